"""emb data grocery: a fake dataset tree in tmp_path (always), and the real copy in ../shared when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from embsdk.errors import ManifestError
from trainer.data.grocery import DEFAULT_GROCERY_ROOT, stable_id, write_grocery_manifest
from trainer.data.manifest import Manifest, validate

runner = CliRunner()
HEADER = "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str),Product Description Path (str)\n"
CLASSES = [("Golden", 0, "Apple", 0), ("Granny", 1, "Apple", 0), ("Banana", 2, "Banana", 1)]


def _fake_dataset(root: Path) -> Path:
    from PIL import Image

    lines = []
    for name, cid, coarse, coid in CLASSES:
        icon = f"/iconic-images-and-descriptions/{coarse}/{name}/{name}_Iconic.jpg"
        (root / icon.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (cid * 80, 100, 50)).save(root / icon.lstrip("/"))
        lines.append(f"{name},{cid},{coarse},{coid},{icon},/x/{name}_Description.txt\n")
    (root / "classes.csv").write_text(HEADER + "".join(lines))
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        listing = []
        for name, cid, coarse, coid in CLASSES:
            for i in range(n):
                rel = f"{split}/{coarse}/{name}/{name}_{i:03d}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (24, 24), (cid * 80, 30, 200)).save(root / rel)
                listing.append(f"{rel}, {cid}, {coid}\n")
        (root / f"{split}.txt").write_text("".join(listing))
    return root


def test_fake_dataset_manifest(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "grocery")
    m = Manifest.load(write_grocery_manifest(root, tmp_path / "out"))
    assert m.tasks == ["catalog", "coarse", "fine"]
    assert m.classes("fine") == ["Banana", "Golden", "Granny"] and m.classes("coarse") == ["Apple", "Banana"]
    assert len(m) == 3 * (2 + 1 + 1) + 3
    catalog = m.rows[m.rows["domain"] == "catalog"]
    assert len(catalog) == 3 and set(catalog["split"]) == {"train"}
    assert catalog["task.fine"].isna().all() and catalog["task.coarse"].isna().all()
    assert sorted(catalog["task.catalog"]) == ["Banana", "Golden", "Granny"]
    photos = m.rows[m.rows["domain"] == "photo"]
    assert (photos["task.catalog"] == photos["task.fine"]).all()
    assert m.rows["id"].is_unique and all(Path(p).is_absolute() for p in m.rows["image"])
    assert m.rows["id"].iloc[0] == stable_id("train/Apple/Golden/Golden_000.jpg")
    assert validate(m).ok
    assert not any((tmp_path / "out").glob("*.jpg"))  # never copies the dataset


def test_missing_image_or_wrong_root_is_a_clear_error(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "grocery")
    (root / "val/Banana/Banana/Banana_000.jpg").unlink()
    with pytest.raises(ManifestError, match="Banana_000.jpg listed in val.txt is missing"):
        write_grocery_manifest(root, tmp_path / "out")
    with pytest.raises(ManifestError, match="Grocery Store dataset folder"):
        write_grocery_manifest(tmp_path, tmp_path / "out")


def test_cli_on_fake_dataset(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "grocery")
    res = runner.invoke(app, ["data", "grocery", "--root", str(root), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (
        out["tasks"] == {"catalog": 3, "coarse": 2, "fine": 3}
        and out["rows_by_split_domain"]["train/catalog"] == 3
    )


@pytest.mark.skipif(
    not (DEFAULT_GROCERY_ROOT / "classes.csv").is_file(), reason="Grocery Store copy not present"
)
def test_real_grocery_store(tmp_path: Path) -> None:
    m = Manifest.load(write_grocery_manifest(out_dir=tmp_path))
    assert {t: len(m.classes(t)) for t in m.tasks} == {"catalog": 81, "coarse": 43, "fine": 81}
    counts = m.rows.groupby(["split", "domain"]).size().to_dict()
    listed = {
        s: sum(1 for line in (DEFAULT_GROCERY_ROOT / f"{s}.txt").read_text().splitlines() if line.strip())
        for s in ("train", "val", "test")
    }
    assert counts == {
        ("train", "photo"): listed["train"],
        ("val", "photo"): listed["val"],
        ("test", "photo"): listed["test"],
        ("train", "catalog"): 81,
    }
    assert m.rows["id"].is_unique
    assert validate(m, check_images=False).ok
