"""Bad ids and hostile images: one manifest check and one decoder for emb data validate, emb train and emb eval."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _train_data import TINY_ARGS, rewrite_rows, tiny_config, write_images_manifest
from typer.testing import CliRunner

from cli.main import app
from embsdk.errors import ImageDecodeError, ManifestError
from tests.backfill._images import write_bomb_png
from trainer.data.manifest import Manifest

BAD_IDS = [  # (row -> id cell, the row named, what the message says)
    ({9: "1003"}, 9, r"duplicate id 1003 \(first in row 3"),
    ({4: str(2**63)}, 4, "not an integer in the int64 range"),
    ({4: "1.5"}, 4, "not an integer in the int64 range"),
    ({4: ""}, 4, "empty id"),
]


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    return write_images_manifest(tmp_path / "data", per_class=3, test_per_class=1)


def _with_ids(path: Path, cells: dict[int, str], fmt: str) -> Path:
    rewrite_rows(path, {row: {"id": value} for row, value in cells.items()})
    if fmt == "csv":
        return path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    ids = [v for v in frame["id"]]
    if any(v == "" for v in ids):
        frame["id"] = pd.Series([float(v) if v else None for v in ids])
    elif any("." in v for v in ids):
        frame["id"] = pd.Series([float(v) for v in ids])
    else:
        frame["id"] = pd.Series([int(v) for v in ids], dtype="uint64" if str(2**63) in ids else "int64")
    out = path.with_suffix(".parquet")
    frame.to_parquet(out)
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(("cells", "row", "match"), BAD_IDS)
def test_validate_refuses_ids_backfill_would_refuse(
    manifest_path: Path, fmt: str, cells: dict[int, str], row: int, match: str
) -> None:
    path = _with_ids(manifest_path, cells, fmt)
    out = CliRunner().invoke(app, ["data", "validate", str(path), "--no-images"])
    assert out.exit_code == 1 and "manifest OK" not in out.stdout
    assert isinstance(out.exception, ManifestError) and out.exception.row == row
    assert f"row {row}: " in str(out.exception)
    with pytest.raises(ManifestError, match=match):
        Manifest.load(path)  # what emb train and emb eval load


def test_ids_at_the_int64_bounds_are_kept_exactly(manifest_path: Path) -> None:
    rewrite_rows(manifest_path, {0: {"id": str(-(2**63))}, 1: {"id": str(2**63 - 1)}})
    assert Manifest.load(manifest_path).ids()[:2] == [-(2**63), 2**63 - 1]


def test_train_refuses_a_duplicate_id_before_training(manifest_path: Path, tmp_path: Path) -> None:
    rewrite_rows(manifest_path, {9: {"id": "1003"}})
    out = CliRunner().invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest_path),
            "--out",
            str(tmp_path / "run"),
            *TINY_ARGS,
            "--epochs",
            "1",
        ],
    )
    assert out.exit_code == 1 and isinstance(out.exception, ManifestError), out.output
    assert "duplicate id 1003" in str(out.exception) and not (tmp_path / "run" / "checkpoints").exists()


def _with_bomb(manifest_path: Path, row: int) -> Path:
    bomb = write_bomb_png(manifest_path.parent / "img" / "bomb.png")
    rewrite_rows(manifest_path, {row: {"image": str(bomb)}})
    return bomb


def test_validate_skips_and_counts_a_decompression_bomb(manifest_path: Path) -> None:
    _with_bomb(manifest_path, 1)
    out = CliRunner().invoke(app, ["data", "validate", str(manifest_path), "--json"])
    assert out.exit_code == 1 and not isinstance(out.exception, Exception), (
        out.output
    )  # bad rows, not a crash
    report = json.loads(out.stdout)
    assert report["skipped"] == 1 and report["good"] == report["total"] - 1
    assert report["bad"][0].startswith("row 1: too large image") and "bomb.png" in report["bad"][0]


def test_train_data_skips_and_counts_a_bomb_and_the_dataset_raises_typed(
    manifest_path: Path, tmp_path: Path
) -> None:
    from embsdk.preprocess import InputSpec
    from trainer._setup import prepare_data
    from trainer.data.dataset import ImageDataset, train_transform

    _with_bomb(manifest_path, 1)  # a train row
    data = prepare_data(tiny_config(manifest_path, tmp_path / "run"))
    assert [b.row for b in data.report.bad] == [1] and 1 not in data.rows
    ds = ImageDataset(data.manifest, [1], train_transform(InputSpec(image_size=32)))
    with pytest.raises(ImageDecodeError, match="too large"):
        ds[0]


def test_a_bomb_in_a_result_grid_is_a_grey_tile(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    from trainer.evaluate.figures import _THUMB, _font, _paste

    bomb = write_bomb_png(tmp_path / "bomb.png")
    canvas = Image.new("RGB", (_THUMB + 20, _THUMB + 20), "white")
    _paste(canvas, ImageDraw.Draw(canvas), bomb, (0, 0), (0, 200, 0), "bomb", _font(10))
    assert canvas.getpixel((_THUMB // 2, _THUMB // 2)) == (200, 200, 200)
