"""``emb train`` → ``emb eval`` on a tiny run folder, and the experiment pipeline on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _eval_data import write_tiny_manifest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_train_then_eval_run_folder(tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "data")
    run = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest),
            "--out",
            str(run),
            "--backbone",
            "tiny-cnn",
            "--epochs",
            "1",
            "--image-size",
            "64",
            "--embedding-dim",
            "32",
            "--batch-size",
            "8",
        ],
    )
    assert trained.exit_code == 0, trained.output
    report = tmp_path / "report"
    res = runner.invoke(
        app,
        ["eval", str(run), "--manifest", str(manifest), "--report", str(report), "--json", "--workers", "0"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["dim"] == 32 and data["input_spec"]["image_size"] == 64
    assert set(data["tasks"]) == {"coarse", "fine", "catalog"}
    for task in data["tasks"].values():
        for kind in ("float", "binary"):
            assert 0.0 <= task[kind]["R@1"] <= task[kind]["R@5"] <= task[kind]["R@10"] <= 1.0
            assert 0.0 <= task[kind]["mAP@R"] <= 1.0
    assert (report / "grids" / "catalog_binary.png").is_file()
    # a retrained run (new checkpoint) must not reuse the cached embeddings of the old one
    (run / "checkpoints" / "last.pt").touch()
    again = runner.invoke(
        app,
        ["eval", str(run), "--manifest", str(manifest), "--report", str(report), "--json", "--workers", "0"],
    )
    assert json.loads(again.stdout)["cached"] is False
    # a report kept inside the run folder (where emb publish looks for it) does not invalidate its own cache
    inside = [
        "eval",
        str(run),
        "--manifest",
        str(manifest),
        "--report",
        str(run / "eval"),
        "--json",
        "--workers",
        "0",
    ]
    assert json.loads(runner.invoke(app, inside).stdout)["cached"] is False
    assert json.loads(runner.invoke(app, inside).stdout)["cached"] is True


@pytest.mark.slow
def test_experiment_pipeline_on_tiny_data(tmp_path: Path) -> None:
    from experiments.unified_vs_specialized import ExperimentConfig, run_experiment

    manifest = write_tiny_manifest(tmp_path / "data")
    out = tmp_path / "out"
    cfg = ExperimentConfig(
        manifest=str(manifest),
        work_dir=str(tmp_path / "work"),
        out_dir=str(out),
        backbone="tiny-cnn",
        embedding_dim=32,
        aug_views=1,
        epochs=2,
        batch_size=12,
        seeds=[0, 1],
        workers=0,
    )
    data = run_experiment(cfg, log=lambda _msg: None)
    report = (out / "REPORT.md").read_text()
    for needle in (
        "| coarse | R@1 |",
        "| catalog | mAP@R |",
        "specialized binary",
        "unified ≥ specialized?",
        "figures/r1_bars.png",
    ):
        assert needle in report, needle
    assert set(data["runs"]) == {"unified", "specialized-coarse", "specialized-fine", "specialized-catalog"}
    assert set(data["runs"]["unified"]) == {"0", "1"}
    assert (
        data["verify"]["identical_bits"] >= 0.99
    )  # the saved run folder, re-embedded from the images, agrees
    for name in ("r1_bars.png", "recall_unified.png", "grid_unified_fine_binary.png"):
        assert (out / "figures" / name).stat().st_size > 0

    # the full check: `emb eval` on the saved run folder gives the cached-feature R@1 of seed 0
    from dataclasses import replace

    from experiments.unified_vs_specialized.run_folder import verify_run_folder
    from trainer.data.manifest import Manifest

    full = verify_run_folder(
        tmp_path / "work" / "run-unified",
        Manifest.load(manifest),
        tmp_path / "verify",
        data["runs"]["unified"]["0"]["tasks"],
        None,
        replace(cfg, verify_rows=-1),  # type: ignore[arg-type]
    )
    assert full["max_abs_r1_diff"] <= 0.13  # 8 queries per task: one flipped tie is 0.125
