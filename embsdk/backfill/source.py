"""Read the (id, image path) pairs a backfill needs from a manifest, without the trainer (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embsdk.errors import ManifestError

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
    """Load ``id`` and ``image`` columns of a CSV or Parquet manifest (paths made absolute).

    Raises:
        ManifestError: missing file or columns, non-integer or duplicate ids, empty manifest.
    """
    import pandas as pd

    path = Path(manifest)
    if not path.is_file():
        raise ManifestError("manifest file not found", path=str(path))
    try:
        df = pd.read_parquet(path) if path.suffix in {".parquet", ".pq"} else pd.read_csv(path, dtype={"image": str})
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for unreadable files
        raise ManifestError(f"unreadable manifest ({exc})", path=str(path)) from None
    missing = [c for c in ("id", "image") if c not in df.columns]
    if missing:
        hint = " (emb data grocery writes an id column)" if "id" in missing else ""
        raise ManifestError(f"missing column(s) {', '.join(missing)}{hint}", path=str(path))
    if df.empty:
        raise ManifestError("the manifest has no rows", path=str(path))
    if df["id"].isna().any():
        row = int(np.flatnonzero(df["id"].isna().to_numpy())[0])
        raise ManifestError("empty id", row=row, path=str(path))
    try:
        ids = df["id"].to_numpy().astype(np.int64, casting="safe")
    except TypeError:
        raise ManifestError(f"ids must be 64-bit integers, got dtype {df['id'].dtype}", path=str(path)) from None
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise ManifestError(f"duplicate id {ids[row]} (ids must be unique)", row=row, path=str(path))
    base = path.resolve().parent
    paths = [p if Path(p).is_absolute() else str(base / p) for p in df["image"].astype(str)]
    return BackfillItems(ids, paths)
