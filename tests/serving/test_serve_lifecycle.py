"""``emb serve`` as a real process: ready → endpoints → clean stop on SIGINT/SIGTERM; no orphans if it is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .procs import alive, children, in_group

pytestmark = pytest.mark.triton
pytest.importorskip("tritonclient")
pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")

ROOT = Path(__file__).resolve().parents[2]
SHM = Path("/dev/shm")


@pytest.fixture
def repository(tmp_path: Path, tiny_exports: list[Path]) -> Path:
    from triton_models.repository import ModelRepository

    repo = ModelRepository(tmp_path / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    return repo.root


def _start(repository: Path, home: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--repository",
        str(repository),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--json",
        "--ready-timeout",
        "120",
    ]
    env = {**os.environ, "EMB_HOME": str(home)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    text = ""
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        text += line
        if line.startswith("}"):
            return proc, json.loads(text)
    proc.kill()
    raise AssertionError(f"emb serve printed no endpoints: {text!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]


def _shm(cli_pid: int) -> list[Path]:
    return sorted(SHM.glob(f"triton_python_backend_shm_region_emb{cli_pid}x*"))


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_emb_serve_stops_cleanly(
    repository: Path, tmp_path: Path, sig: int, tiny_exports: list[Path]
) -> None:
    from embsdk.serving.health import check_server
    from triton_models.repository import ModelRepository

    proc, ep = _start(repository, tmp_path / "home")
    server_pid = ep["pid"]
    report = check_server(ep["grpc"], protocol="grpc")
    assert [(g["generation"], g["ok"]) for g in report["generations"]] == [("unified-v1", True)]
    if sig == signal.SIGINT:  # a version published while serving is picked up without a restart
        ModelRepository(repository).add(tiny_exports[1], generation="unified-v2")
        deadline = time.monotonic() + 60
        while len(check_server(ep["http"])["generations"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [(g["generation"], g["ok"]) for g in check_server(ep["http"])["generations"]] == [
            ("unified-v1", True),
            ("unified-v2", True),
        ]
    stubs = children(server_pid)
    assert stubs and _shm(proc.pid), "a loaded python-backend model has a stub process and a shm region"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "tritonserver stopped (exit code 0)" in err
    assert _wait_gone([server_pid, *stubs], timeout=5) == []
    assert in_group(server_pid) == [] and _shm(proc.pid) == []


def test_killed_emb_serve_leaves_no_orphans(repository: Path, tmp_path: Path) -> None:
    proc, ep = _start(repository, tmp_path / "home")
    server_pid = ep["pid"]
    stubs = children(server_pid)
    assert stubs
    proc.kill()  # SIGKILL: no cleanup code runs in emb serve; the server gets SIGTERM from the kernel
    proc.wait()
    assert _wait_gone([server_pid, *stubs], timeout=30) == []
    assert _shm(proc.pid) == []


def test_serve_without_repository_or_with_broken_model_fails_fast(
    tmp_path: Path, tiny_exports: list[Path]
) -> None:
    from embsdk.errors import ServerStartError
    from embsdk.serving.server import TritonServer
    from triton_models.repository import ModelRepository

    with pytest.raises(ServerStartError, match="does not exist"):
        TritonServer(tmp_path / "missing", http_port=0, grpc_port=0).start()
    repo = ModelRepository(tmp_path / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    (repo.root / "unified" / "1" / "model.onnx").write_bytes(b"garbage")  # the stub cannot load it
    server = TritonServer(repo.root, http_port=0, grpc_port=0, ready_timeout=60)
    with pytest.raises(ServerStartError, match="tritonserver"):
        server.start()
    assert not server.running and server.shm_files() == []
    assert in_group(server.proc.pid) == []  # type: ignore[union-attr]
    shutil.rmtree(repo.root)
