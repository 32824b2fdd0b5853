"""Write the training manifest for the Grocery Store dataset (Klasson et al., WACV 2019), read in place.

Three tasks mimic the three training sets of the Pinterest unified embedding (Zhai et al., KDD 2019):

* ``task.coarse``  42-43 coarse classes (Apple, Milk, ...): semantic classes, like *Flashlight*.
* ``task.fine``    81 fine classes (Golden-Delicious, ...): product / instance classes, like *Shop-the-Look*.
* ``task.catalog`` the same 81 fine classes, carried by the phone photos (``domain=photo``) AND by the 81
  iconic product images (``domain=catalog``): photo -> catalog matching, like *Lens*.

Photos keep the dataset's own train/val/test split. The 81 iconic images get ``split=train`` (they are
labeled catalog data the model may learn from) and form the catalog *gallery for every split*: the
photo -> catalog evaluation queries with the photos of the evaluated split and retrieves among all
``domain == "catalog"`` rows. Iconic rows carry only the ``task.catalog`` label.

Image paths are absolute (the dataset is never copied); ``id`` is a stable int64 derived from the
image's path inside the dataset (first 8 bytes of its SHA-256, top bit cleared).
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from embsdk._fileio import write_text_atomic
from embsdk.config import get_settings
from embsdk.errors import ManifestError

__all__ = ["DEFAULT_GROCERY_ROOT", "stable_id", "write_grocery_manifest"]

DEFAULT_GROCERY_ROOT = get_settings().grocery_root  # EMB_GROCERY_ROOT, else ../shared/data/grocery-store
COLUMNS = ["id", "image", "split", "domain", "task.coarse", "task.fine", "task.catalog"]


def stable_id(relative_path: str) -> int:
    """A stable non-negative int64 id for an image, from its path inside the dataset."""
    digest = hashlib.sha256(relative_path.strip("/").encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def _read_classes(root: Path) -> dict[int, dict[str, str]]:
    path = root / "classes.csv"
    if not path.is_file():
        raise ManifestError(f"{path} not found: is {root} the Grocery Store dataset folder?", path=str(path))
    out: dict[int, dict[str, str]] = {}
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            name, cid, coarse, _coarse_id, iconic = (c.strip() for c in row[:5])
            out[int(cid)] = {"fine": name, "coarse": coarse, "iconic": iconic.lstrip("/")}
    return out


def write_grocery_manifest(root: str | Path | None = None, out_dir: str | Path = ".") -> Path:
    """Write ``out_dir/grocery.csv`` for the dataset at *root*; return its path.

    Args:
        root: the dataset folder (holding ``train.txt``, ``classes.csv``); default ``$EMB_GROCERY_ROOT``,
            else ``../shared/data/grocery-store``.
        out_dir: where to write the manifest (created if needed).

    Raises:
        ManifestError: *root* is not the Grocery Store dataset, or an image listed in it is missing.

    Example:
        >>> write_grocery_manifest(out_dir="data")   # doctest: +SKIP
        PosixPath('data/grocery.csv')
    """
    root = Path(root or get_settings().grocery_root).expanduser().resolve()
    classes = _read_classes(root)
    rows: list[dict[str, object]] = []
    for split in ("train", "val", "test"):
        listing = root / f"{split}.txt"
        if not listing.is_file():
            raise ManifestError(f"{listing} not found", path=str(listing))
        for line_no, line in enumerate(listing.read_text().splitlines()):
            if not line.strip():
                continue
            rel, fine_id, _coarse_id = (p.strip() for p in line.split(","))
            image = root / rel
            if not image.is_file():
                raise ManifestError(
                    f"image {image} listed in {listing.name} is missing", row=line_no, path=str(listing)
                )
            c = classes[int(fine_id)]
            rows.append(
                {
                    "id": stable_id(rel),
                    "image": str(image),
                    "split": split,
                    "domain": "photo",
                    "task.coarse": c["coarse"],
                    "task.fine": c["fine"],
                    "task.catalog": c["fine"],
                }
            )
    for cid in sorted(classes):
        c = classes[cid]
        rows.append(
            {
                "id": stable_id(c["iconic"]),
                "image": str(root / c["iconic"]),
                "split": "train",
                "domain": "catalog",
                "task.coarse": "",
                "task.fine": "",
                "task.catalog": c["fine"],
            }
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "grocery.csv"
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out, buf.getvalue())
    return out
