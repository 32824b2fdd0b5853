"""``emb publish``: a trained run becomes a registered, served generation; all or nothing, even under SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embsdk.errors import DuplicateGeneration, GenerationNotFound, ParityError

pytest.importorskip("torch")
pytest.importorskip("tritonclient")

ROOT = Path(__file__).resolve().parents[2]


def _registry(url: str | None = None):
    from registry import Registry

    return Registry(url)


def _served(repo_root: Path) -> dict[str, int]:
    from triton_models.repository import ModelRepository

    return {r["generation"]: r["version"] for r in ModelRepository(repo_root).served()}


def test_publish_registers_and_places_the_model(tiny_run: Path, tmp_path: Path, registry_url: str) -> None:
    from embsdk.export_format import sha256_file
    from publishing.publish import publish
    from trainer.evaluate import evaluate
    from trainer.run import read_run_info

    info = read_run_info(tiny_run)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    evaluate(run, info.manifest_path, run / "eval", progress=False, workers=0)
    repo = tmp_path / "repo"
    first = publish(run, "unified-v1", registry_url=registry_url, repository=repo)
    second = publish(
        run,
        "unified-v2",
        parents=["unified-v1:fine-tuned-from"],
        aliases=["staging"],
        registry_url=registry_url,
        repository=repo,
    )
    assert (first.triton_version, second.triton_version) == (1, 2)
    assert _served(repo) == {"unified-v1": 1, "unified-v2": 2}
    assert second.eval_report == str((run / "eval").resolve())
    assert (
        second.metrics["shape/manifest-test/r@1/binary"]
        == json.loads((run / "eval" / "metrics.json").read_text())["tasks"]["shape"]["binary"]["R@1"]
    )
    with _registry(registry_url) as reg:
        gen = reg.resolve("staging")
        assert gen.name == "unified-v2" and gen.family == "unified" and gen.status == "candidate"
        assert [(p.parent, p.kind) for p in gen.parents] == [("unified-v1", "fine-tuned-from")]
        assert [(d.name, d.sha256, d.role) for d in gen.datasets] == [
            ("manifest", info.manifest_sha256, "train")
        ]
        assert gen.embedding_spec["bits"] == 64 and gen.input_spec["image_size"] == 32
        assert gen.code_version == info.code_version
        assert gen.metrics == second.metrics
        onnx = reg.artifact_path("unified-v2", "model.onnx", verify=True)
        served_onnx = repo / "unified" / "2" / "model.onnx"
        assert sha256_file(onnx) == sha256_file(served_onnx) == second.artifacts["model.onnx"]
        assert (
            json.loads(reg.artifact_path("unified-v2", "export.json").read_text())["generation"]
            == "unified-v2"
        )
    with pytest.raises(DuplicateGeneration, match="unified-v2"):
        publish(run, "unified-v2", registry_url=registry_url, repository=repo)
    with pytest.raises(GenerationNotFound, match="unified-v0"):
        publish(run, "unified-v3", parents=["unified-v0"], registry_url=registry_url, repository=repo)
    assert _served(repo) == {"unified-v1": 1, "unified-v2": 2}


def test_failing_parity_is_refused_with_the_reason(tiny_run: Path, tmp_path: Path) -> None:
    import torch

    from publishing.publish import publish

    run = tmp_path / "diverged"
    shutil.copytree(tiny_run, run)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(k for k, v in state["model"].items() if v.is_floating_point() and v.ndim == 2)
    state["model"][key].fill_(float("nan"))  # training diverged
    torch.save(state, ckpt)
    repo = tmp_path / "repo"
    with pytest.raises(ParityError, match="not finite"):
        publish(run, "unified-v1", repository=repo)
    with _registry() as reg:
        assert reg.list() == []
    assert _served(repo) == {} and not list((repo / "unified").glob(".staging-*"))


_PUBLISH = [sys.executable, "-m", "cli.main", "publish"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "step",
    [
        "publish.after_export",
        "publish.after_stage",
        "registry.before_commit",
        "publish.after_register",
        "repository.before_rename",
        "repository.after_rename",
        "repository.after_mapping",
        "publish.before_alias",
    ],
)
def test_kill_at_each_step_leaves_a_consistent_state(
    step: str, tiny_run: Path, tmp_path: Path, emb_home: Path
) -> None:
    from publishing.publish import CRASH_POINTS, publish
    from triton_models.repository import ModelRepository

    assert step in CRASH_POINTS
    repo = ModelRepository(tmp_path / "repo")
    env = {**os.environ, "EMBSDK_TEST_CRASH_AT": step}
    args = [str(tiny_run), "--name", "unified-v1", "--alias", "staging", "--repository", str(repo.root)]
    proc = subprocess.run(
        [*_PUBLISH, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    with _registry() as reg:
        names = [g.name for g in reg.list()]
        for name in names:  # a registered generation has every file
            for artifact in ("model.onnx", "export.json"):
                assert reg.artifact_path(name, artifact, verify=True).is_file()
    registered = names == ["unified-v1"]
    assert registered == (
        step not in {"publish.after_export", "publish.after_stage", "registry.before_commit"}
    )
    fam = repo.root / "unified"
    for number in [p.name for p in fam.iterdir() if p.name.isdigit()] if fam.is_dir() else []:
        assert sorted(p.name for p in (fam / number).iterdir()) == [
            "export.json",
            "generation.json",
            "model.onnx",
            "model.py",
        ]
    assert set(_served(repo.root)) <= set(names)  # nothing served that is not registered

    # the next publish finishes or undoes it
    if registered:
        with pytest.raises(DuplicateGeneration):
            publish(tiny_run, "unified-v1", repository=repo.root)
    else:
        publish(tiny_run, "unified-v1", aliases=["staging"], repository=repo.root)
    assert _served(repo.root) == {"unified-v1": 1}
    assert not list(fam.glob(".staging-*")) and sorted(p.name for p in fam.iterdir() if p.is_dir()) == ["1"]
    with _registry() as reg:
        assert [g.name for g in reg.list()] == ["unified-v1"]
        assert (
            reg.fsck().ok
        )  # nothing referenced is missing or corrupt (orphan blobs of a killed run are harmless)


def test_cli_publish_json(tiny_run: Path, tmp_path: Path) -> None:
    from cli.main import app

    res = CliRunner().invoke(
        app, ["publish", str(tiny_run), "--name", "unified-v1", "--alias", "production", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (
        data["generation"] == "unified-v1"
        and data["triton_version"] == 1
        and data["aliases"] == ["production"]
    )
    assert data["parity"]["passed"] and data["parity"]["bit_agreement"] >= 0.999
    res = CliRunner().invoke(app, ["publish", str(tiny_run), "--name", "unified-v1"])
    assert res.exit_code == 1 and isinstance(res.exception, DuplicateGeneration)
    assert "already exists" in str(res.exception)


def test_repository_rebuilds_from_the_registry(tiny_run: Path, tmp_path: Path) -> None:
    from embsdk.export_format import sha256_file
    from publishing.publish import publish
    from triton_models.sync import sync_from_registry

    repo = tmp_path / "repo"
    publish(tiny_run, "unified-v1", repository=repo)
    publish(tiny_run, "unified-v2", parents=["unified-v1"], repository=repo)
    fresh = tmp_path / "fresh"  # a new serving machine: only the registry is there
    done = sync_from_registry(fresh)
    assert done["added"] == [("unified-v1", 1), ("unified-v2", 2)]
    assert _served(fresh) == _served(repo)
    assert sha256_file(fresh / "unified" / "2" / "model.onnx") == sha256_file(
        repo / "unified" / "2" / "model.onnx"
    )
    assert (fresh / "unified" / "config.pbtxt").read_text() == (repo / "unified" / "config.pbtxt").read_text()
    assert sync_from_registry(fresh)["added"] == []  # idempotent
    with _registry() as reg:
        reg.retire("unified-v1", reason="superseded")  # candidate -> retired
    assert sync_from_registry(fresh)["removed"] == ["unified-v1"]
    assert _served(fresh) == {"unified-v2": 2}


_PAUSED_PUBLISH = """
import sys, time
from embsdk import _faults
from publishing.publish import publish

def pause():
    print("paused", flush=True)
    time.sleep(600)

_faults.arm("registry.after_blobs_written", pause)  # inside the registration: exported, staged, work folder in use
publish(sys.argv[1], sys.argv[2], repository=sys.argv[3])
"""


@pytest.mark.slow
def test_killed_publish_work_folder_is_removed_and_a_live_ones_kept(
    tiny_run: Path, tmp_path: Path, emb_home: Path
) -> None:
    """A SIGKILLed publish used to leave $EMB_HOME/tmp/publish-* (its export) forever; nothing removed it."""
    from publishing.publish import publish
    from tests.registry._proc import wait_for_line

    repo, scratch = tmp_path / "repo", emb_home / "tmp"
    env = {**os.environ, "EMBSDK_TEST_CRASH_AT": "publish.after_export"}
    args = [str(tiny_run), "--name", "unified-v1", "--repository", str(repo)]
    killed = subprocess.run(
        [*_PUBLISH, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [killed_dir] = scratch.glob("publish-unified-v1-*")
    assert (killed_dir / "export" / "model.onnx").is_file()

    live = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_PUBLISH, str(tiny_run), "unified-v2", str(repo)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(live, "paused", timeout=240)
        [live_dir] = scratch.glob("publish-unified-v2-*")
        publish(tiny_run, "unified-v3", repository=repo)  # sweeps work folders of dead publishes first
        assert not killed_dir.exists()
        assert (live_dir / "export" / "model.onnx").is_file()  # still in use: kept
    finally:
        live.kill()
        live.communicate(timeout=60)
    with _registry() as reg:
        report = reg.fsck(repair=True)
    assert report.stale_workdirs == (str(live_dir),) and str(live_dir) in report.removed
    assert list(scratch.iterdir()) == []


def _evaluated_copy(tiny_run: Path, tmp_path: Path, report: Path | None) -> tuple[Path, Path | None]:
    """A copy of the tiny run (so that no report of it leaks into other tests), evaluated into ``report``."""
    from trainer.evaluate import evaluate
    from trainer.run import read_run_info

    run = tmp_path / "runs" / "unified"
    shutil.copytree(tiny_run, run)
    if report is not None:
        evaluate(run, read_run_info(run).manifest_path, report, progress=False, workers=0)
    return run, report


def _check_report_registered(data: dict, report: Path, registry_url: str | None = None) -> None:
    """The report's metrics and files (summary, plots, metrics.json) are the generation's, by sha256."""
    from embsdk.export_format import sha256_file
    from publishing.eval_report import eval_metrics

    expected = eval_metrics(report)
    assert expected and data["metrics"] == expected
    assert data["eval_report"] == str(report.resolve())
    files = {
        "eval/metrics.json": report / "metrics.json",
        "eval/summary.md": report / "summary.md",
        "eval/recall_at_k.png": report / "recall_at_k.png",
        **{f"eval/grids/{p.name}": p for p in (report / "grids").glob("*.png")},
    }
    assert len(files) > 4  # result grids too
    with _registry(registry_url) as reg:
        gen = reg.get(data["generation"])
        assert gen.metrics == expected
        by_name = {a.name: a for a in gen.artifacts}
        assert set(by_name) == {"model.onnx", "export.json", *files}
        for name, src in files.items():
            assert by_name[name].role == "eval-report"
            assert by_name[name].sha256 == sha256_file(src) == data["artifacts"][name]
            assert reg.artifact_path(data["generation"], name, verify=True).read_bytes() == src.read_bytes()
        assert by_name["model.onnx"].role == "model"


def test_cli_publish_with_eval_report_elsewhere(tiny_run: Path, tmp_path: Path) -> None:
    """`emb eval RUN --report DIR` then `emb publish RUN --eval-report DIR`: metrics and report files registered."""
    from cli.main import app

    run, report = _evaluated_copy(tiny_run, tmp_path, tmp_path / "elsewhere" / "deep" / "report")
    res = CliRunner().invoke(
        app,
        ["publish", str(run), "--name", "unified-v1", "--eval-report", str(report), "--json"],
    )
    assert res.exit_code == 0, res.output
    _check_report_registered(json.loads(res.stdout), report)


def test_cli_publish_finds_a_report_of_the_run_next_to_it(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`emb eval runs/unified --report reports/unified` then `emb publish runs/unified` (no --eval-report)."""
    from cli.main import app
    from trainer.evaluate import evaluate
    from trainer.run import read_run_info

    _evaluated_copy(tiny_run, tmp_path, None)
    monkeypatch.chdir(tmp_path)  # both commands from the project folder, with relative paths
    report = tmp_path / "reports" / "unified"
    evaluate(
        "runs/unified",
        read_run_info("runs/unified").manifest_path,
        "reports/unified",
        progress=False,
        workers=0,
    )
    assert json.loads((report / "metrics.json").read_text())["model"] == "runs/unified"
    res = CliRunner().invoke(app, ["publish", "runs/unified", "--name", "unified-v1"])
    assert res.exit_code == 0, res.output
    assert f"from {report.resolve()}" in res.output and "metrics: none" not in res.output
    assert "eval/summary.md" in res.output
    with _registry() as reg:
        data = {
            "generation": "unified-v1",
            "metrics": reg.get("unified-v1").metrics,
            "eval_report": str(report.resolve()),
            "artifacts": {a.name: a.sha256 for a in reg.get("unified-v1").artifacts},
        }
    _check_report_registered(data, report)


def test_publish_takes_the_run_eval_folder_by_default(tiny_run: Path, tmp_path: Path) -> None:
    """RUN/eval wins over another report of the same run; without any report: 'metrics: none'."""
    from cli.main import app
    from publishing.publish import publish

    run, _ = _evaluated_copy(tiny_run, tmp_path, None)
    res = CliRunner().invoke(app, ["publish", str(run), "--name", "unified-v1"])
    assert res.exit_code == 0 and "metrics: none" in res.output, res.output
    with _registry() as reg:
        assert reg.get("unified-v1").metrics == {}
        assert {a.name for a in reg.get("unified-v1").artifacts} == {"model.onnx", "export.json"}

    from trainer.evaluate import evaluate
    from trainer.run import read_run_info

    manifest = read_run_info(run).manifest_path
    evaluate(run, manifest, run / "eval", progress=False, workers=0)
    evaluate(run, manifest, tmp_path / "reports" / "newer", progress=False, workers=0)  # newer, elsewhere
    result = publish(run, "unified-v2", repository=tmp_path / "repo")
    _check_report_registered(result.to_dict(), run / "eval")


def test_publish_refuses_a_report_of_another_model(tiny_run: Path, tmp_path: Path) -> None:
    from embsdk.errors import RunError
    from publishing.publish import publish

    _, report = _evaluated_copy(tiny_run, tmp_path, tmp_path / "report")
    run = tmp_path / "second"
    shutil.copytree(tiny_run, run)
    with pytest.raises(RunError, match="not of the run"):
        publish(run, "unified-v1", eval_report=report, repository=tmp_path / "repo")
    with pytest.raises(RunError, match="not an emb eval report"):
        publish(run, "unified-v1", eval_report=tmp_path, repository=tmp_path / "repo")
    with _registry() as reg:
        assert reg.list() == []


def test_run_eval_of_another_existing_run_is_refused_but_a_moved_runs_is_kept(
    tiny_run: Path, tmp_path: Path
) -> None:
    """RUN/eval used to be taken whatever model it named: a copied run published another run's metrics."""
    from embsdk.errors import RunError
    from publishing.publish import publish

    other, report = _evaluated_copy(tiny_run, tmp_path, tmp_path / "report")  # a report of run `other`
    run = tmp_path / "second"
    shutil.copytree(tiny_run, run)
    shutil.copytree(report, run / "eval")  # names `other`, which exists: not this run's report
    with pytest.raises(RunError, match="not of the run"):
        publish(run, "unified-v1", repository=tmp_path / "repo")
    with _registry() as reg:
        assert reg.list() == []
    moved = tmp_path / "moved"
    other.rename(moved)  # the evaluated run moved: its report, inside it, still names the old folder
    shutil.copytree(report, moved / "eval", dirs_exist_ok=True)
    result = publish(moved, "unified-v1", repository=tmp_path / "repo")
    assert result.to_dict()["metrics"]
