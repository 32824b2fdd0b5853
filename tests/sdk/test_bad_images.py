"""Hostile images through the one decoder: bombs are typed ImageDecodeErrors, large JPEGs decode in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.errors import ImageDecodeError
from embsdk.preprocess import (
    MAX_DECODE_PIXELS,
    TOO_LARGE,
    InputSpec,
    load_image,
    open_image,
    preprocess_image,
)
from tests.backfill._images import write_bomb_png, write_large_jpeg
from tests.backfill.conftest import publish_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")  # 30000 x 30000, ~110 KB


def test_embed_raises_image_decode_error_for_a_bomb(tmp_path: Path, bomb: Path) -> None:
    assert bomb.stat().st_size < 200_000
    pub = publish_tiny(tmp_path, n_images=2)
    with pytest.raises(ImageDecodeError, match=TOO_LARGE) as err:
        embsdk.embed([pub.paths[0], bomb], version=pub.generation)
    assert err.value.path == str(bomb)


@pytest.mark.parametrize("pil_limit", ["default", None, 10**12])
def test_the_limit_is_embsdk_s_own_and_checked_before_decoding(
    tmp_path: Path, bomb: Path, pil_limit: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    if pil_limit != "default":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_limit)  # PIL's own guard off: embsdk's still holds
    just_over = write_bomb_png(
        tmp_path / "over.png", side=int(MAX_DECODE_PIXELS**0.5) + 1
    )  # PIL alone accepts it
    for path in (bomb, just_over):
        started = time.perf_counter()
        with pytest.raises(ImageDecodeError, match=TOO_LARGE):
            load_image(path, InputSpec())
        assert time.perf_counter() - started < 1.0  # refused from the header: nothing was decoded


def test_a_normal_image_decodes_exactly_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (348, 464, 3), dtype=np.uint8)).save(path, quality=90)
    spec = InputSpec()
    np.testing.assert_array_equal(load_image(path, spec), preprocess_image(open_image(path), spec))


def test_a_large_jpeg_decodes_reduced_and_close_to_full(tmp_path: Path) -> None:
    path = write_large_jpeg(tmp_path / "big.jpg", (2400, 1800))  # ≥ 4 x the 256-pixel resize: 1/2 scale
    spec = InputSpec()
    reduced = load_image(path, spec)
    assert open_image(path, min_side=512).size == (1200, 900)
    full = preprocess_image(open_image(path), spec)
    assert np.abs(reduced - full).max() < 0.05  # normalized units: ~3 grey levels at most


_MEASURE = """
import resource, sys
from embsdk.preprocess import InputSpec, load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = load_image(sys.argv[1], InputSpec())
assert x.shape == (3, 224, 224)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_large_jpeg_decodes_in_bounded_memory(tmp_path: Path) -> None:
    size = (8000, 6000)
    path = write_large_jpeg(tmp_path / "large.jpg", size)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        check=True,
    )
    grew = int(out.stdout.strip())
    full_rgb = size[0] * size[1] * 3  # 144 MB: what a full decode holds at least
    assert grew < full_rgb / 8, f"peak memory grew {grew / 2**20:.0f} MiB decoding {size}"
