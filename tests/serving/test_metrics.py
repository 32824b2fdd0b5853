"""Serving observability: ``emb serve --metrics-port`` serves tritonserver's Prometheus text (on loopback),
and ``EMB_LOG_LEVEL=INFO`` shows embsdk's logger lines on stderr while the default level changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_emb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_metrics_flags_default_off_and_loopback() -> None:
    from embsdk.serving.server import TritonServer

    off = TritonServer(Path("."), http_port=0, grpc_port=0)
    assert off._metrics_flags() == ["--allow-metrics=false"] and off.metrics_url is None
    on = TritonServer(Path("."), host="0.0.0.0", http_port=0, grpc_port=0, metrics_port=0)
    flags = on._metrics_flags()
    assert "--allow-metrics=true" in flags and "--metrics-address=127.0.0.1" in flags  # not the --host
    assert on.metrics_port and f"--metrics-port={on.metrics_port}" in flags
    assert on.metrics_url == f"http://127.0.0.1:{on.metrics_port}/metrics"
    there = TritonServer(Path("."), http_port=0, grpc_port=0, metrics_port=9, metrics_host="10.1.2.3")
    assert "--metrics-address=10.1.2.3" in there._metrics_flags()


def test_log_level_info_shows_logger_lines_and_default_is_unchanged(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "EMB_LOG_LEVEL"}
    base.update(EMB_HOME=str(tmp_path / "home"), EMB_REGISTRY_URL=f"sqlite:///{tmp_path / 'r.db'}")
    quiet = _run_emb("registry", "migrate", env=base)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # nothing logged at the default level (WARNING)
    again = _run_emb("registry", "migrate", env=base)
    loud = _run_emb(
        "registry", "register", "unified-v1", "--spec-bits", "64", env={**base, "EMB_LOG_LEVEL": "INFO"}
    )
    assert loud.returncode == 0, loud.stderr
    assert "INFO registry._core: registry" in loud.stderr and "register unified-v1" in loud.stderr
    assert again.stdout.strip()  # the CLI output itself is the same with or without logs
    bad = _run_emb("version", env={**base, "EMB_LOG_LEVEL": "LOUD"})
    assert bad.returncode == 0 and "not a logging level" in bad.stderr


def _start_serve(repository: Path, home: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, "-m", "cli.main", "serve", "--repository", str(repository), "--http-port", "0"]
    cmd += ["--grpc-port", "0", "--json", "--ready-timeout", "120", *extra]
    env = {**os.environ, "EMB_HOME": str(home), "EMB_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    text, deadline = "", time.monotonic() + 150
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        text += line
        if line.startswith("}"):
            return proc, json.loads(text)
    proc.kill()
    raise AssertionError(f"emb serve printed no endpoints: {text!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]


@pytest.mark.triton
def test_emb_serve_metrics_port_serves_prometheus_text(tmp_path: Path, tiny_exports: list[Path]) -> None:
    pytest.importorskip("tritonclient")
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    from embsdk.serving.health import check_server
    from triton_models.repository import ModelRepository

    repo = ModelRepository(tmp_path / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    proc, ep = _start_serve(repo.root, tmp_path / "home", "--metrics-port", "0")
    try:
        url = ep["metrics"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        report = check_server(ep["http"])  # one real inference per generation
        assert [(g["generation"], g["ok"]) for g in report["generations"]] == [("unified-v1", True)]
        deadline, text = time.monotonic() + 30, ""
        while time.monotonic() < deadline:  # tritonserver refreshes some metrics on an interval
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            lines = [ln for ln in text.splitlines() if ln.startswith("nv_inference_request_success{")]
            if any(float(ln.rsplit(" ", 1)[1]) >= 1 for ln in lines):
                break
            time.sleep(0.5)
        assert "# TYPE nv_inference_request_success counter" in text
        assert any(float(ln.rsplit(" ", 1)[1]) >= 1 for ln in lines), lines
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "INFO embsdk.serving.server: tritonserver ready" in err  # EMB_LOG_LEVEL=INFO: logger lines
    assert "INFO embsdk.serving.server: tritonserver stopped" in err


@pytest.mark.triton
def test_emb_serve_without_metrics_port_has_none(tmp_path: Path, tiny_exports: list[Path]) -> None:
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    from embsdk.serving.server import TritonServer
    from triton_models.repository import ModelRepository

    repo = ModelRepository(tmp_path / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    with TritonServer(repo.root, http_port=0, grpc_port=0) as server:
        assert "--allow-metrics=false" in server.command()
        with pytest.raises(OSError):
            urllib.request.urlopen("http://127.0.0.1:8002/metrics", timeout=2)
