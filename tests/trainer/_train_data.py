"""Tiny synthetic training sets for the trainer tests (PIL images in tmp_path; no network, no real data)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}


def write_images_manifest(
    root: Path,
    *,
    per_class: int = 8,
    test_per_class: int = 2,
    size: int = 40,
    seed: int = 0,
    fmt: str = "csv",
) -> Path:
    """4 colour classes; tasks ``color`` (4 classes, every row) and ``warm`` (2 classes, every other row)."""
    rng = np.random.default_rng(seed)
    from PIL import Image

    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    k = 0
    for name, rgb in COLORS.items():
        for i in range(per_class + test_per_class):
            px = np.clip(np.array(rgb, float) + rng.normal(0, 30, (size, size + 8, 3)), 0, 255).astype(
                np.uint8
            )
            rel = f"img/{name}_{i}.png"
            Image.fromarray(px).save(root / rel)
            warm = ("warm" if name in ("red", "yellow") else "cold") if k % 2 == 0 else ""
            rows.append(
                {
                    "id": 1000 + k,
                    "image": rel,
                    "split": "train" if i < per_class else "test",
                    "domain": "photo",
                    "task.color": name,
                    "task.warm": warm,
                }
            )
            k += 1
    if fmt == "parquet":
        import pandas as pd

        path = root / "manifest.parquet"
        pd.DataFrame(rows).to_parquet(path)
        return path
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def rewrite_rows(path: Path, edit: dict[int, dict[str, str]]) -> None:
    """Change some cells of a CSV manifest in place (row number → {column: value})."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for i, cells in edit.items():
        rows[i].update(cells)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# The tiny training setup every trainer test shares: the same options on the command line and in Python.
TINY_ARGS = [
    "--backbone",
    "tiny-cnn",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--embedding-dim",
    "32",
]


def tiny_config(manifest: Path, out: Path, **overrides: object):  # -> trainer.config.TrainConfig
    """A :class:`TrainConfig` matching :data:`TINY_ARGS` (2 epochs, seed 3), with *overrides* applied."""
    from trainer.config import TrainConfig

    base: dict[str, object] = {
        "manifest": str(manifest),
        "out": str(out),
        "backbone": "tiny-cnn",
        "image_size": 32,
        "batch_size": 8,
        "num_workers": 0,
        "embedding_dim": 32,
        "epochs": 2,
        "seed": 3,
    }
    base.update(overrides)
    return TrainConfig(**base)
