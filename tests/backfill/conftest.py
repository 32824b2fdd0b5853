"""A registered tiny generation with an ONNX artifact, and a manifest of real image files (one corrupt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import SPEC, make_tiny_model, write_images


@dataclass(frozen=True)
class Published:
    generation: str
    manifest: Path
    ids: np.ndarray
    good_ids: np.ndarray
    corrupt_id: int
    paths: list[Path]


def publish_tiny(tmp_path: Path, name: str = "tiny-v1", n_images: int = 23) -> Published:
    import pandas as pd

    from registry import Registry
    from trainer.export import export_model

    imgs = write_images(tmp_path / "imgs", n_images)
    corrupt = tmp_path / "imgs" / "corrupt.jpg"
    corrupt.write_bytes(imgs[0].read_bytes()[:50])
    export = tmp_path / "export"
    export_model(make_tiny_model(0), export, input_spec=SPEC, parity_images=imgs[:4])
    with Registry() as reg:
        reg.register(
            name,
            family="tiny",
            artifacts=[export / "model.onnx"],
            embedding_spec={
                "dim": 64,
                "bits": 64,
                "binarization": "layernorm-sign",
                "threshold": 0.0,
                "bit_order": "numpy-packbits-big",
                "float_dtype": "float16",
            },
            input_spec=SPEC.to_dict(),
        )
    paths = [*imgs, corrupt]
    ids = np.arange(len(paths), dtype=np.int64) * 1_000_003 + 7  # sparse 64-bit ids
    manifest = tmp_path / "items.csv"
    pd.DataFrame({"id": ids, "image": [str(p) for p in paths]}).to_csv(manifest, index=False)
    return Published(name, manifest, ids, ids[:-1], int(ids[-1]), paths)


@pytest.fixture
def published(tmp_path: Path) -> Published:
    return publish_tiny(tmp_path)
