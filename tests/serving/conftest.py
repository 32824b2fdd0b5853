"""Fixtures for export and serving tests: a tiny embedding model, real image files, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embsdk.preprocess import InputSpec

IMAGE_SIZE = 32
EMBED_DIM = 64
SPEC = InputSpec(image_size=IMAGE_SIZE)


def make_tiny_model(seed: int = 0, dim: int = EMBED_DIM):
    """A tiny CNN with the trainer's forward contract: (N, 3, S, S) -> LayerNorm-ed (N, dim)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, dim),
        nn.LayerNorm(dim, elementwise_affine=False),
    ).eval()


def write_images(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """Write ``n`` small, varied JPEG/PNG photos-like files (gradients + noise + shapes)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(40, 80)), int(rng.integers(40, 80))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * rng.uniform(1, 4), yy * rng.uniform(1, 4), (xx + yy) * rng.uniform(0.5, 2)], -1)
        pix = np.clip(base + rng.normal(0, 25, (h, w, 3)) + rng.integers(0, 120, 3), 0, 255).astype(np.uint8)
        img = Image.fromarray(pix)
        ImageDraw.Draw(img).ellipse(
            [rng.integers(0, w // 2), rng.integers(0, h // 2), w - 5, h - 5],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
        )
        path = folder / f"img{i:03d}.{'jpg' if i % 2 else 'png'}"
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("images"), 12)


@pytest.fixture(scope="session")
def corrupt_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "truncated.jpg"
    good = write_images(path.parent / "src", 1)[0]
    path.write_bytes(good.read_bytes()[:60])
    return path


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> list[Path]:
    """Two exports of two different tiny models (two generations)."""
    from trainer.export import export_model

    root = tmp_path_factory.mktemp("exports")
    out = []
    for seed in (0, 1):
        d = root / f"gen{seed}"
        export_model(make_tiny_model(seed), d, input_spec=SPEC, parity_images=images)
        out.append(d)
    return out


def write_manifest(root: Path, n: int = 16) -> Path:
    """A tiny manifest over :func:`write_images` (one task, 3 classes; every 4th row is test)."""
    import csv

    paths = write_images(root / "img", n)
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "image", "split", "domain", "task.shape"])
        w.writeheader()
        for i, p in enumerate(paths):
            w.writerow(
                {
                    "id": i,
                    "image": str(p.relative_to(root)),
                    "split": "test" if i % 4 == 0 else "train",
                    "domain": "photo",
                    "task.shape": f"c{i % 3}",
                }
            )
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the trainer: tiny-cnn, 64-d embedding, 32 px, one epoch on 12 images (a few seconds)."""
    from trainer.config import TrainConfig
    from trainer.loop import train

    root = tmp_path_factory.mktemp("tiny_run")
    manifest = write_manifest(root)
    train(
        TrainConfig(
            manifest=str(manifest),
            out=str(root / "run"),
            backbone="tiny-cnn",
            pretrained=False,
            embedding_dim=EMBED_DIM,
            image_size=IMAGE_SIZE,
            epochs=1,
            batch_size=8,
            num_workers=0,
        ),
        progress=False,
    )
    return root / "run"
