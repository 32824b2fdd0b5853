"""``emb eval`` end to end on tiny synthetic images: report files, cache, metrics vs a brute-force reference, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _eval_data import write_tiny_manifest
from typer.testing import CliRunner

from cli.main import app
from embsdk.codes import hamming, pack_codes
from embsdk.errors import ManifestError, RunError

runner = CliRunner()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_tiny_manifest(tmp_path / "data")


def _eval(*args: str) -> object:
    return runner.invoke(app, ["eval", *args, "--workers", "0", "--batch-size", "8"])


def _brute_force_r1(q: np.ndarray, g: np.ndarray, q_lab: list[str], g_lab: list[str], binary: bool) -> float:
    if binary:
        dist = hamming(pack_codes(q), pack_codes(g)).astype(float)
    else:
        qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
        dist = -(qn @ gn.T)
    hits = [
        g_lab[min(range(len(g_lab)), key=lambda j, i=i: (dist[i, j], j))] == q_lab[i]
        for i in range(len(q_lab))
    ]
    return float(np.mean(hits))


def test_eval_writes_report_and_matches_reference(manifest: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    res = _eval("imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(report), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["tasks"]) == {"coarse", "fine", "catalog"}
    for name in (
        "metrics.json",
        "summary.md",
        "recall_at_k.png",
        "embeddings.npz",
        "grids/fine_binary.png",
        "grids/catalog_float.png",
    ):
        assert (report / name).stat().st_size > 0, name
    assert json.loads((report / "metrics.json").read_text())["tasks"] == data["tasks"]
    assert "| fine | photo (16) | binary |" in (report / "summary.md").read_text()
    cat = data["tasks"]["catalog"]
    assert (cat["kind"], cat["queries"], cat["gallery"]) == (
        "catalog",
        8,
        4,
    )  # test photos -> the 4 catalog images
    assert (data["tasks"]["fine"]["kind"], data["tasks"]["fine"]["gallery"]) == (
        "photo",
        16,
    )  # train photos only

    # recompute R@1 from the cached embeddings with a brute-force reference
    import pandas as pd

    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    with np.load(report / "embeddings.npz") as cache:
        pos = {int(r): i for i, r in enumerate(cache["rows"])}
        floats = cache["floats"]
    for task in ("fine", "catalog"):
        lab = rows[f"task.{task}"]
        gal = rows.index[
            (lab != "")
            & (
                (rows.domain == "catalog")
                if task == "catalog"
                else (rows.split == "train") & (rows.domain == "photo")
            )
        ]
        qry = rows.index[(lab != "") & (rows.split == "test") & (rows.domain == "photo")]
        q, g = floats[[pos[i] for i in qry]], floats[[pos[i] for i in gal]]
        for kind, binary in (("float", False), ("binary", True)):
            expected = _brute_force_r1(q, g, list(lab[qry]), list(lab[gal]), binary)
            assert data["tasks"][task][kind]["R@1"] == pytest.approx(expected), (task, kind)
    ratio = data["tasks"]["fine"]["binary"]["R@1"] / data["tasks"]["fine"]["float"]["R@1"]
    assert data["tasks"]["fine"]["binary_float_r1_ratio"] == pytest.approx(ratio)

    # second run: embeddings come from the cache, same numbers
    again = _eval(
        "imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(report), "--json", "--task", "fine"
    )
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["cached"] is True and set(second["tasks"]) == {"fine"}
    assert second["tasks"]["fine"] == data["tasks"]["fine"]


def test_unreadable_image_is_skipped_and_counted(manifest: Path, tmp_path: Path) -> None:
    bad = manifest.parent / "photos/test/red-a_0.png"
    bad.write_bytes(b"not a png")
    res = _eval("imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(tmp_path / "r"), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["skipped_images"] == 1 and "red-a_0.png" in data["skipped"][0]
    assert data["tasks"]["fine"]["queries"] == 7  # one query fewer, everything else evaluated


def test_unknown_run_folder(manifest: Path, tmp_path: Path) -> None:
    res = _eval(str(tmp_path / "no-such-run"), "--manifest", str(manifest), "--report", str(tmp_path / "r"))
    assert isinstance(res.exception, RunError)
    assert "not a run folder" in str(res.exception) and "imagenet:" in str(res.exception)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "color"], "no task 'color'"),
        (["--split", "val", "--task", "fine"], None),  # val exists: fine
        (["--split", "train"], "it is the gallery"),
    ],
)
def test_task_and_split_errors(manifest: Path, tmp_path: Path, extra: list[str], message: str | None) -> None:
    res = _eval(
        "imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(tmp_path / "r"), "--json", *extra
    )
    if message is None:
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["tasks"]["fine"]["queries"] == 4
    else:
        assert isinstance(res.exception, ManifestError) and message in str(res.exception)


def test_empty_split_is_a_clear_one_line_error(tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "data", per_class={"train": 2, "test": 1})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "eval",
            "imagenet:tiny-cnn",
            "--manifest",
            str(manifest),
            "--report",
            str(tmp_path / "r"),
            "--split",
            "val",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.startswith("error: ")
        and "split 'val' is empty" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    assert not (tmp_path / "r").exists()


def test_task_without_gallery(tmp_path: Path) -> None:
    import pandas as pd

    manifest = write_tiny_manifest(tmp_path / "data")
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    df.loc[df.split == "train", "task.coarse"] = ""
    df.to_csv(manifest, index=False)
    res = _eval(
        "imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(tmp_path / "r"), "--task", "coarse"
    )
    assert isinstance(res.exception, ManifestError) and "no labelled 'train' photos" in str(res.exception)
