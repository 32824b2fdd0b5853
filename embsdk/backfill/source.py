"""Read the (id, image path) pairs a backfill needs from a manifest, without the trainer (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BackfillItems", "read_items"]


@dataclass(frozen=True)
class BackfillItems:
    """Ids (int64) and absolute image paths, in manifest order."""

    ids: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, mask: np.ndarray) -> BackfillItems:
        idx = np.flatnonzero(mask)
        return BackfillItems(self.ids[idx], [self.paths[i] for i in idx])


def read_items(manifest: str | Path) -> BackfillItems:
    """Load the ``id`` and ``image`` columns of a CSV or Parquet manifest (paths made absolute).

    The table goes through the one manifest check (:func:`embsdk.manifest.read_table`), as in
    ``emb data validate``, ``emb train`` and ``emb eval``.

    Raises:
        ManifestError: missing file or columns, empty manifest, an id that is not an int64, a duplicate id.
    """
    from embsdk.manifest import read_table

    path = Path(manifest)
    df = read_table(path, required=("id", "image"))
    base = path.resolve().parent
    paths = [p if Path(p).is_absolute() else str(base / p) for p in df["image"].astype(str)]
    return BackfillItems(df["id"].to_numpy(np.int64), paths)
