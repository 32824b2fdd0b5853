"""Tiny synthetic image sets for the evaluation tests (written to tmp_path; no network, no real data)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

# fine class -> (coarse class, base RGB colour)
FINE = {
    "red-a": ("red", (220, 30, 30)),
    "red-b": ("red", (160, 20, 60)),
    "blue-a": ("blue", (30, 40, 220)),
    "blue-b": ("blue", (20, 120, 200)),
}


def _image(path: Path, rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 48) -> None:
    from PIL import Image

    px = np.clip(np.array(rgb, float) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(px).save(path)


def write_tiny_manifest(root: Path, *, per_class: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Photos (train/val/test) and one catalog image per fine class; tasks coarse, fine, catalog."""
    per_class = per_class or {"train": 4, "val": 1, "test": 2}
    rng = np.random.default_rng(seed)
    rows = []
    for fine, (coarse, rgb) in FINE.items():
        for split, n in per_class.items():
            for i in range(n):
                rel = f"photos/{split}/{fine}_{i}.png"
                _image(root / rel, rgb, rng)
                rows.append(
                    {
                        "image": rel,
                        "split": split,
                        "domain": "photo",
                        "task.coarse": coarse,
                        "task.fine": fine,
                        "task.catalog": fine,
                    }
                )
        rel = f"catalog/{fine}.png"
        _image(root / rel, rgb, rng)
        rows.append(
            {
                "image": rel,
                "split": "train",
                "domain": "catalog",
                "task.coarse": "",
                "task.fine": "",
                "task.catalog": fine,
            }
        )
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
