"""Manifest loading and validation: bad rows are named, counted (default) or fatal (strict)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _train_data import rewrite_rows, write_images_manifest
from typer.testing import CliRunner

from cli.main import app
from embsdk.errors import ManifestError
from trainer.data.manifest import Manifest, validate


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    return write_images_manifest(tmp_path / "data", per_class=3, test_per_class=1)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_load_reads_tasks_classes_and_paths(tmp_path: Path, fmt: str) -> None:
    path = write_images_manifest(tmp_path / fmt, per_class=3, test_per_class=1, fmt=fmt)
    m = Manifest.load(path)
    assert m.tasks == ["color", "warm"]
    assert m.classes("color") == ["blue", "green", "red", "yellow"]
    assert m.classes("warm") == ["cold", "warm"]
    assert m.labels("warm").tolist()[1] is None  # empty cell = no label
    assert m.image_path(0) == (path.parent / "img" / "red_0.png")
    assert len(m.subset(split="test")) == 4 and len(m.subset(split="train")) == 12
    assert len(m.sha256) == 64
    assert validate(m).ok


def test_missing_corrupt_unknown_rows_are_skipped_and_counted(manifest_path: Path) -> None:
    (manifest_path.parent / "img" / "red_1.png").unlink()
    (manifest_path.parent / "img" / "red_2.png").write_bytes(b"not a png at all")
    rewrite_rows(
        manifest_path, {7: {"task.color": "purple"}, 5: {"task.color": "", "task.warm": ""}}
    )  # row 7: a test row
    m = Manifest.load(manifest_path)
    report = validate(m)
    reasons = {b.row: b.reason for b in report.bad}
    assert set(reasons) == {1, 2, 5, 7}
    assert reasons[1].startswith("missing image") and "red_1.png" in reasons[1]
    assert reasons[2].startswith("corrupt image")
    assert "unknown label" in reasons[7] and "'purple'" in reasons[7]
    assert reasons[5].startswith("no label")
    assert len(report.good) == len(m) - 4
    assert "skipped 4 of 16 rows" in report.summary()


def test_unknown_label_means_not_in_the_train_vocabulary(manifest_path: Path) -> None:
    rewrite_rows(manifest_path, {3: {"task.color": "purple"}})  # row 3 is a *test* row of red
    m = Manifest.load(manifest_path)
    assert "purple" not in m.classes("color")
    assert [b.row for b in validate(m).bad] == [3]


def test_strict_fails_at_the_first_bad_row_naming_it(manifest_path: Path) -> None:
    (manifest_path.parent / "img" / "green_2.png").unlink()
    rewrite_rows(manifest_path, {9: {"task.color": "purple"}})
    m = Manifest.load(manifest_path)
    with pytest.raises(ManifestError, match=r"row 6: missing image") as exc:
        validate(m, strict=True)
    assert exc.value.row == 6


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        ("image,task.a\n", "no rows"),
        ("path,task.a\nx.png,b\n", "'image' column"),
        ("image,label\nx.png,b\n", "task.<name>"),
        ("image,task.a,split\nx.png,b,training\n", "row 0: unknown split"),
        ("image,task.a,id\nx.png,b,abc\n", "row 0: 'id' is not an integer"),
    ],
)
def test_malformed_manifests_raise_clear_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=match):
        Manifest.load(path)


def test_missing_file_and_unsupported_format(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        Manifest.load(tmp_path / "nope.csv")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(ManifestError, match="unsupported manifest format"):
        Manifest.load(tmp_path / "m.json")


def test_all_rows_bad_is_an_error_even_without_strict(manifest_path: Path) -> None:
    for p in (manifest_path.parent / "img").iterdir():
        p.unlink()
    with pytest.raises(ManifestError, match="no usable rows"):
        validate(Manifest.load(manifest_path))


def test_cli_validate_reports_count_and_exits_1(manifest_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "validate", str(manifest_path), "--json"])
    assert ok.exit_code == 0, ok.output
    (manifest_path.parent / "img" / "blue_0.png").unlink()
    bad = runner.invoke(app, ["data", "validate", str(manifest_path)])
    assert bad.exit_code == 1
    assert "skipped 1 of 16 rows" in bad.stdout and "row 8: missing image" in bad.stdout
    unknown = runner.invoke(app, ["data", "validate", str(manifest_path), "--split", "tran"])
    assert unknown.exit_code == 1
    assert isinstance(unknown.exception, ManifestError) and "use train, val, test" in str(unknown.exception)
