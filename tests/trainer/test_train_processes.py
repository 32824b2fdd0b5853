"""Real processes: SIGKILL mid-epoch then resume; 2-process DistributedDataParallel (gloo, CPU) via torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _train_data import TINY_ARGS, tiny_config, write_images_manifest

from trainer.loop import train
from trainer.run import load_model

BIN = Path(sys.executable).parent
TINY = [*TINY_ARGS, "--seed", "3"]


def _steps(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written when killed
            pass
    return out


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_loses_at_most_the_uncheckpointed_steps(tmp_path: Path) -> None:
    manifest = write_images_manifest(tmp_path / "data", per_class=6, test_per_class=0)
    run = tmp_path / "run"
    cmd = [
        str(BIN / "emb"),
        "train",
        "--manifest",
        str(manifest),
        "--out",
        str(run),
        "--epochs",
        "200",
        "--checkpoint-every",
        "2",
        "--quiet",
        *TINY,
    ]
    # One intra-op thread everywhere: float reductions then add up in the same order in the killed run, the
    # resumed run and the in-process reference (whatever thread count earlier tests left in this process).
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=one_thread)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            steps = [r["step"] for r in _steps(run) if "loss" in r and "event" not in r]
            if steps and steps[-1] >= 8 and steps[-1] % 3 != 0:  # 3 steps per epoch: stop mid-epoch
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    logged = max(r["step"] for r in _steps(run) if "loss" in r and "event" not in r)
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert 0 <= logged - saved["step"] <= 2  # lost at most the steps since the last checkpoint (every 2)
    assert not any(r.get("event") == "finished" for r in _steps(run))

    target = saved["step"] + 3
    res = subprocess.run(
        [
            str(BIN / "emb"),
            "train",
            "--resume",
            str(run),
            "--max-steps",
            str(target),
            "--json",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=one_thread,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["step"] == target
    resumed = [r for r in _steps(run) if r.get("event") == "resume"]
    assert resumed[-1]["step"] == saved["step"]

    # the killed-and-resumed run is exactly where an uninterrupted run is after the same number of steps
    ref = tmp_path / "ref"
    cfg = tiny_config(manifest, ref, epochs=200, checkpoint_every=2, max_steps=target)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    a, _ = load_model(run)
    b, _ = load_model(ref)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    manifest = write_images_manifest(tmp_path / "data", per_class=6, test_per_class=0)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(BIN / "torchrun"),
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "cli.main",
        "train",
        "--manifest",
        str(manifest),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--json",
        *TINY,
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[2], check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)  # only rank 0 prints
    assert summary["world_size"] == 2 and summary["status"] == "finished"
    assert summary["step"] == 4  # 24 rows / (8 per rank x 2 ranks) = 2 steps per epoch
    assert summary["images_seen"] == 4 * 16
    meta = json.loads((run / "run.json").read_text())
    assert meta["world_size"] == 2
    model, info = load_model(run)
    assert info.step == 4 and not model.training
