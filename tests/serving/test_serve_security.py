"""Security and availability of ``emb serve`` (real processes, the real tritonserver).

* restricted APIs (shared memory, logging, trace, statistics; model repository off loopback) need the admin key
  on HTTP (header ``admin-key``) and gRPC (metadata ``triton-grpc-protocol-admin-key``);
* an infer request that declares a huge input is refused before tritonserver allocates (2.51 aborts on it);
* a bounded fuzz of malformed infer requests leaves the same tritonserver process answering;
* a killed tritonserver is restarted by ``emb serve``, logged, unhealthy meanwhile;
* a generated admin key is 0600 on disk and rotates per start (tritonserver shows it in /proc/PID/cmdline);
* request targets in any form (absolute, %-encoded, dot segments, pipelined) cannot smuggle a huge infer past
  the guard; clients that disconnect early leave no traceback; ``--json`` says where it is bound;
* ``emb serve --watch`` stops serving a generation the registry retires.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .procs import alive
from .test_guard import _raw, _raw_post

pytestmark = pytest.mark.triton
pytest.importorskip("tritonclient")
pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")

ROOT = Path(__file__).resolve().parents[2]
GOOD = np.zeros((1, 3, 32, 32), np.float32)
GRPC_KEY = "triton-grpc-protocol-admin-key"


class Serve:
    """One ``emb serve`` process: its endpoints (``--json``), its stderr file, its admin key."""

    def __init__(
        self, root: Path, repository: Path, host: str, *, home: Path | None = None, watch: bool = False
    ) -> None:
        self.home, self.stderr_path = home or root / "home", root / "serve.err"
        cmd = [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--repository",
            str(repository),
            "--host",
            host,
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--json",
            "--ready-timeout",
            "120",
            "--watch" if watch else "--no-watch",
        ]
        env = {k: v for k, v in os.environ.items() if k != "EMB_TRITON_ADMIN_KEY"}
        env["EMB_HOME"] = str(self.home)
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True
            )
        self.info = self._read_endpoints()
        self.http, self.grpc = self.info["http"], self.info["grpc"]
        self.key = Path(self.info["admin_key_file"]).read_text().strip()

    def _read_endpoints(self) -> dict[str, Any]:
        text, deadline = "", time.monotonic() + 150
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            text += line
            if line.startswith("}"):
                return json.loads(text)
        self.proc.kill()
        raise AssertionError(f"emb serve printed no endpoints: {text!r} {self.stderr()!r}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_stderr(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.stderr():
            assert self.proc.poll() is None, f"emb serve exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {needle!r} in emb serve's stderr: {self.stderr()}"
            time.sleep(0.2)
        return self.stderr()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, self.stderr()
        assert not Path(self.info["admin_key_file"]).exists(), "a generated key dies with its server"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, tiny_exports: list[Path]) -> Path:
    from triton_models.repository import ModelRepository

    repo = ModelRepository(tmp_path_factory.mktemp("secrepo") / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    return repo.root


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("loopback"), repository, "127.0.0.1")
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("exposed"), repository, "0.0.0.0")
    yield serve
    serve.stop()


# ---------------------------------------------------------------------------------------------- helpers
def request(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    host, port = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def infer_body(shape: Any, datatype: Any = "FP32", data: Any = None, **extra: Any) -> bytes:
    tensor = {
        "name": "image",
        "shape": shape,
        "datatype": datatype,
        "data": [0.0] if data is None else data,
        **extra,
    }
    return json.dumps({"inputs": [tensor]}).encode()


INFER = "/v2/models/unified/versions/1/infer"


def good_answer(url: str, protocol: str = "http") -> None:
    from embsdk.serving.client import TritonClient

    with TritonClient(url, protocol=protocol, retries=0, timeout=30) as client:  # type: ignore[arg-type]
        _, code = client.infer("unified", 1, GOOD)
    assert code.shape == (1, 8)


def wait_answering(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            good_answer(url)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ---------------------------------------------------------------------------------------------- item 1
HTTP_RESTRICTED = [  # (method, path, body): one call per restricted category
    ("GET", "/v2/systemsharedmemory/status", None),
    (
        "POST",
        "/v2/systemsharedmemory/region/evil/register",
        b'{"key": "/emb-test-evil", "offset": 0, "byte_size": 64}',
    ),
    ("GET", "/v2/logging", None),
    ("POST", "/v2/logging", b'{"log_verbose_level": 1}'),
    ("GET", "/v2/trace/setting", None),
    ("GET", "/v2/models/stats", None),
]
HTTP_OPEN = [
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/unified"),
    ("GET", "/v2/models/unified/config"),
]


def _check_http(serve: Serve, restricted: list[tuple[str, str, bytes | None]]) -> None:
    for method, path, body in restricted:
        status, text = request(serve.http, method, path, body)
        assert status == 403 and b"restricted" in text.lower(), (path, status, text)
        status, text = request(serve.http, method, path, body, {"admin-key": "wrong"})
        assert status == 403, (path, status, text)
    for method, path, body in restricted:
        if "register" in path or "unload" in path:
            continue  # with the key these would really register a region, unload the model
        status, text = request(serve.http, method, path, body, {"admin-key": serve.key})
        assert status == 200, (path, status, text)
    for method, path in HTTP_OPEN:
        assert request(serve.http, method, path)[0] == 200, path
    good_answer(serve.http)


def test_off_loopback_every_admin_api_needs_the_key_over_http(exposed: Serve) -> None:
    assert exposed.info["restricted"] and set(exposed.info["restricted_apis"]) == {
        "shared-memory",
        "statistics",
        "trace",
        "logging",
        "model-repository",
    }
    shm = Path("/dev/shm/emb-test-evil")
    shm.write_bytes(b"\0" * 64)  # a file an anonymous client would have inference write into
    try:
        _check_http(
            exposed,
            [
                *HTTP_RESTRICTED,
                ("POST", "/v2/repository/index", b"{}"),
                ("POST", "/v2/repository/models/unified/unload", b"{}"),
            ],
        )
        _status, text = request(
            exposed.http, "GET", "/v2/systemsharedmemory/status", None, {"admin-key": exposed.key}
        )
        assert json.loads(text) == [], "no region was registered by the refused request"
    finally:
        shm.unlink(missing_ok=True)
    assert request(exposed.http, "GET", "/v2/models/unified/ready")[0] == 200, (
        "the refused unload did nothing"
    )


def test_off_loopback_every_admin_api_needs_the_key_over_grpc(exposed: Serve) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(exposed.grpc)
    calls = {
        "shared-memory status": lambda h: client.get_system_shared_memory_status(headers=h),
        "shared-memory register": lambda h: client.register_system_shared_memory(
            "evil", "/emb-test-evil", 64, headers=h
        ),
        "log settings": lambda h: client.get_log_settings(headers=h),
        "log update": lambda h: client.update_log_settings({"log_verbose_level": 1}, headers=h),
        "trace settings": lambda h: client.get_trace_settings(headers=h),
        "statistics": lambda h: client.get_inference_statistics(headers=h),
        "repository index": lambda h: client.get_model_repository_index(headers=h),
        "unload": lambda h: client.unload_model("unified", headers=h),
    }
    for name, call in calls.items():
        for headers in (
            None,
            {GRPC_KEY: "wrong"},
            {"admin-key": exposed.key},
        ):  # the bare HTTP header name is not it
            with pytest.raises(InferenceServerException, match="restricted") as err:
                call(headers)
            assert "triton-grpc-protocol-admin-key" in str(err.value), name
    admin = {GRPC_KEY: exposed.key}
    for name in ("shared-memory status", "log settings", "trace settings", "statistics", "repository index"):
        calls[name](admin)  # allowed with the key
    assert client.is_server_ready() and client.is_model_ready("unified")
    assert client.get_model_config("unified").config.name == "unified"
    client.close()
    good_answer(exposed.grpc, "grpc")


def test_on_loopback_shared_memory_logging_trace_statistics_need_the_key(loopback: Serve) -> None:
    assert not loopback.info["restricted"]
    _check_http(loopback, HTTP_RESTRICTED)
    status, _ = request(loopback.http, "POST", "/v2/repository/index", b"{}")
    assert status == 200, "on loopback the repository index stays open (emb serve --check reads it)"


# ---------------------------------------------------------------------------------------------- item 2
def test_a_huge_declared_shape_is_refused_and_the_server_keeps_answering(loopback: Serve) -> None:
    pid = loopback.info["pid"]
    for shape in ([1_000_000_000, 3, 64, 64], [100_000, 3, 32, 32], [2**62, 4], [2**64 + 1, 1]):
        status, text = request(loopback.http, "POST", INFER, infer_body(shape))
        assert status == 400 and b"at most" in text, (shape, status, text)
        good_answer(loopback.http)
    with socket.create_connection(("127.0.0.1", int(loopback.http.rsplit(":", 1)[1])), timeout=30) as s:
        s.sendall(
            f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {2**40}\r\n\r\n".encode()
        )  # then no body
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    good_answer(loopback.http)
    assert alive(pid) and loopback.proc.poll() is None


def _fuzz_http_cases(rng: np.random.Generator) -> list[tuple[bytes, dict[str, str]]]:
    """Malformed infer requests: shapes, dtypes, sizes, raw bytes, binary framing, encodings."""
    shapes: list[Any] = [
        [-1, 3, 32, 32],
        [0, 3, 32, 32],
        [1, 3, 32],
        [1, 3, 32, 32, 1],
        [],
        [2**31, 3, 32, 32],
        [1.5, 3, 32, 32],
        ["1", 3, 32, 32],
        [None],
        [[1], 3],
        {"a": 1},
        "1,3,32,32",
        [True, 3, 32, 32],
        [65, 3, 32, 32],
        [1, 3, 16, 16],
        [9_223_372_036_854_775_807],
        [1, 3, 32, 2**40],
    ]
    cases: list[tuple[bytes, dict[str, str]]] = [(infer_body(s), {}) for s in shapes]
    for dtype in ["FP64", "INT8", "BYTES", "BOOL", "fp32", "FP128", "", None, 7, ["FP32"]]:
        cases.append((infer_body([1, 3, 32, 32], dtype), {}))
    for n in (0, 1, 3071, 3073):  # data of the wrong length for the shape
        cases.append((infer_body([1, 3, 32, 32], data=[0.5] * n), {}))
    cases += [
        (infer_body([1, 3, 32, 32], "BYTES", data=["x" * 100] * 3072), {}),
        (infer_body([1, 3, 32, 32], data=[[[["nested"]]]]), {}),
        (infer_body([1, 3, 32, 32], data=["0.5"] * 3072), {}),
        (
            json.dumps({"inputs": [{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32"}]}).encode(),
            {},
        ),
        (
            (
                b'{"inputs": [{"name": "image", "shape": [10000000000, 3, 64, 64], "shape": [1, 3, 32, 32], '
                b'"datatype": "FP32", "data": [0]}]}'
            ),
            {},
        ),
        (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}),
        (b'{"inputs": [{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0, ', {}),
        (b"", {}),
        (b"null", {}),
        (b"[]", {}),
        (b'{"inputs": {}}', {}),
        (b'{"inputs": [1, 2]}', {}),
        (b"\xff\xfe" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)), {}),
    ]
    for _ in range(10):  # random bytes, some of them posing as JSON
        raw = bytes(rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8))
        cases.append(((b'{"inputs": [' + raw) if rng.random() < 0.5 else raw, {}))
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1, 3, 32, 32],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 12288},
                }
            ]
        }
    ).encode()
    tensor = GOOD.tobytes()
    for hlen, payload in [
        (len(header), tensor[:100]),
        (len(header) + 50, tensor),
        (10, tensor),
        ("-5", tensor),
        ("abc", tensor),
        (10**12, tensor),
        (len(header), tensor + tensor),
    ]:
        cases.append((header + payload, {"Inference-Header-Content-Length": str(hlen)}))
    huge = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [10**9, 3, 64, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 12288},
                }
            ]
        }
    ).encode()
    cases.append((huge + tensor, {"Inference-Header-Content-Length": str(len(huge))}))
    cases += [
        (gzip.compress(infer_body([10**9, 3, 64, 64])), {"Content-Encoding": "gzip"}),
        (gzip.compress(b" " * (80 * 2**20)), {"Content-Encoding": "gzip"}),  # a zip bomb (~80 KiB → 80 MiB)
        (b"not gzip at all", {"Content-Encoding": "gzip"}),
        (infer_body([1, 3, 32, 32]), {"Content-Encoding": "br"}),
    ]
    return cases


def _fuzz_grpc_cases(rng: np.random.Generator) -> list[Any]:
    from tritonclient.grpc import service_pb2

    cases = []
    for shape, dtype, raw in [
        ([10**9, 3, 64, 64], "FP32", GOOD.tobytes()),
        ([-1, 3, 32, 32], "FP32", GOOD.tobytes()),
        ([1, 3, 32, 32], "FP32", GOOD.tobytes()[:7]),
        ([1, 3, 32, 32], "FP64", GOOD.tobytes()),
        ([1, 3, 32, 32], "BYTES", b"\xff" * 12288),
        ([2**62, 4], "UINT8", b"\x00" * 16),
        ([1, 3, 32, 32], "WHAT", b""),
        ([], "FP32", b"\x00" * 4),
        ([1, 3, 32, 32], "FP32", bytes(rng.integers(0, 256, 12287, dtype=np.uint8))),
        ([65, 3, 32, 32], "FP32", b"\x00" * (65 * 12288)),
    ]:
        req = service_pb2.ModelInferRequest(model_name="unified", model_version="1")
        req.inputs.add(name="image", datatype=dtype, shape=shape)
        req.raw_input_contents.append(raw)
        cases.append(req)
    req = service_pb2.ModelInferRequest(model_name="unified")
    req.inputs.add(name="image", datatype="FP32", shape=[10**9, 3, 64, 64]).contents.fp32_contents.extend(
        [0.0] * 10
    )
    cases.append(req)
    return cases


def test_emb_serve_survives_a_bounded_fuzz_of_malformed_infer_requests(loopback: Serve) -> None:
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    pid, rng = loopback.info["pid"], np.random.default_rng(9)
    cases = _fuzz_http_cases(rng)
    assert len(cases) >= 60
    for i, (body, headers) in enumerate(cases):
        status, text = request(
            loopback.http, "POST", INFER, body, {"Content-Type": "application/json", **headers}
        )
        assert status in {400, 411, 413, 415, 500} and b"error" in text, (i, status, text[:300])
        good_answer(loopback.http)
        assert alive(pid), f"tritonserver died on HTTP case {i}: {body[:120]!r} {headers}"
    with grpc.insecure_channel(loopback.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for i, req in enumerate(_fuzz_grpc_cases(rng)):
            with pytest.raises(grpc.RpcError) as err:
                stub.ModelInfer(req, timeout=60)
            assert err.value.code() in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL}, (
                i,
                err.value,
            )
            good_answer(loopback.grpc, "grpc")
            assert alive(pid), f"tritonserver died on gRPC case {i}"
    assert "died" not in loopback.stderr()


# ---------------------------------------------------------------------------------------------- item 3 and the supervisor
def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_generated_admin_key_is_private_and_rotates_per_start(loopback: Serve, exposed: Serve) -> None:
    for serve in (loopback, exposed):
        key_file = Path(serve.info["admin_key_file"])
        assert (
            stat.S_IMODE(key_file.stat().st_mode) == 0o600
            and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        )
        assert len(serve.key) >= 32
        # tritonserver 2.51 reads the key from its command line only: it is there (README, Security, says so)
        assert any(serve.key in arg for arg in _cmdline(serve.info["pid"]))
        assert not any(serve.key in arg for arg in _cmdline(serve.proc.pid)), (
            "emb serve itself never shows it"
        )
        assert serve.key not in serve.stderr() and serve.key not in Path(serve.info["log"]).read_text()
    assert loopback.key != exposed.key, "each start generates its own key"


def test_a_killed_tritonserver_is_restarted_logged_and_unhealthy_meanwhile(exposed: Serve) -> None:
    """Runs last on ``exposed``: it kills that server's tritonserver."""
    from embsdk.errors import ServerUnavailable
    from embsdk.serving.health import check_server

    old_pid = exposed.info["pid"]
    os.kill(old_pid, signal.SIGKILL)
    status, text = request(exposed.http, "GET", "/v2/health/ready")
    assert status == 503 and b"not running" in text
    with pytest.raises(ServerUnavailable):
        check_server(exposed.grpc, protocol="grpc", timeout=2)
    err = exposed.wait_stderr("restarted (restart #1")
    assert f"tritonserver (pid {old_pid}) died: signal SIGKILL" in err and "restart #1 in 1 s" in err
    new_pid = int(err.split("restarted (restart #1, pid ")[1].split(")")[0])
    assert new_pid != old_pid and alive(new_pid) and not alive(old_pid)
    wait_answering(exposed.http)
    good_answer(exposed.grpc, "grpc")
    assert any(exposed.key in arg for arg in _cmdline(new_pid)), "the key stays the same across restarts"
    status, _ = request(exposed.http, "POST", "/v2/repository/index", b"{}", {"admin-key": exposed.key})
    assert status == 200
    log = Path(exposed.info["log"]).read_text()
    assert "died: signal SIGKILL" in log and "restarted (restart #1" in log
    assert exposed.proc.poll() is None


def test_a_failing_restart_is_logged_and_retried_with_a_longer_delay(
    tmp_path: Path, tiny_exports: list[Path]
) -> None:
    from triton_models.repository import ModelRepository

    repo = ModelRepository(tmp_path / "repo")
    repo.add(tiny_exports[0], generation="unified-v1")
    onnx = repo.root / "unified" / "1" / "model.onnx"
    good = onnx.read_bytes()
    serve = Serve(tmp_path, repo.root, "127.0.0.1")
    try:
        onnx.write_bytes(b"garbage")  # the next start cannot load the model
        os.kill(serve.info["pid"], signal.SIGKILL)
        serve.wait_stderr("restart #1 failed")
        onnx.write_bytes(good)
        err = serve.wait_stderr("restarted (restart #2")
        assert "restart #1 in 1 s" in err and "restart #2 in 2 s" in err
        wait_answering(serve.http)
    finally:
        serve.stop()


# ---------------------------------------------------------------------------------------------- red-team findings
HUGE = infer_body([1_000_000_000, 3, 64, 64], data=[1])
TARGETS = [  # request-target forms tritonserver maps (or might map) to the infer endpoint
    "http://x/v2/models/unified/infer",
    "HTTP://X:1/v2/models/unified/versions/1/infer",
    "hTTp://x/v2/models/unified/versions/1/infer",
    "http://x/v2/models/unified/versions/1/infer?x",
    "//v2/models/unified/infer",
    "/v2/models/unified/inf%65r",
    "/v2/models/unifi%65d/versions/%31/infer",
    "/v2//models/unified///infer",
    "/v2/models/unified/./infer",
    "/v2/models/x/../unified/infer",
    "/v2/models/x/%2E%2E/unified/infer",
    "/v2/models/unified/infer?x",
    "/v2/models/unified/infer#x",
    "/V2/MODELS/unified/INFER",
    "/v2/health/ready",
    "/v2/repository/index",
]


def test_no_request_target_form_smuggles_a_huge_infer_past_the_guard(loopback: Serve) -> None:
    """Red team, HIGH: ``POST http://x/v2/models/tiny/infer`` with a huge shape aborted tritonserver (SIGABRT)."""
    pid, port = loopback.info["pid"], int(loopback.http.rsplit(":", 1)[1])
    good = _raw_post(INFER, infer_body([1, 3, 32, 32], data=[0.0] * 3072))
    for target in TARGETS:
        (answer,) = _raw(port, _raw_post(target, HUGE), timeout=60)
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer[:300])
        answers = _raw(port, good + _raw_post(target, HUGE) + good, n_responses=3, timeout=60)
        assert [a[:12] for a in answers] == [b"HTTP/1.1 200", b"HTTP/1.1 400", b"HTTP/1.1 200"][
            : len(answers)
        ]
        assert len(answers) >= 2, (target, answers)  # the third only when the refusal kept the connection
        binary = HUGE + GOOD.tobytes()
        hlen = f"Inference-Header-Content-Length: {len(HUGE)}\r\n"
        (answer,) = _raw(port, _raw_post(target, binary, hlen), timeout=60)
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer[:300])
        assert alive(pid), f"tritonserver died on {target!r}"
    good_answer(loopback.http)
    assert alive(pid) and loopback.proc.poll() is None and "died" not in loopback.stderr()


def test_clients_that_disconnect_early_leave_no_traceback(loopback: Serve) -> None:
    """Red team, LOW: each early disconnect wrote a full traceback to emb serve's stderr."""
    import struct

    port = int(loopback.http.rsplit(":", 1)[1])
    body = infer_body([1, 3, 32, 32], data=[0.0] * 3072)
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        if i % 2:  # the whole request, gone before the answer
            s.sendall(_raw_post(INFER, body))
        else:  # half the body, then gone
            s.sendall(_raw_post(INFER, body)[: len(body) // 2])
        time.sleep(0.05)
        s.close()
    time.sleep(1)
    good_answer(loopback.http)
    err = loopback.stderr()
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


def test_json_output_says_where_it_is_bound_and_where_to_connect(exposed: Serve, loopback: Serve) -> None:
    """Red team, LOW: ``--host 0.0.0.0`` printed ``HTTP 127.0.0.1:P`` as if bound to loopback."""
    from cli.serve import _ready_human

    http_port, grpc_port = (int(exposed.info[k].rsplit(":", 1)[1]) for k in ("http", "grpc"))
    assert exposed.info["host"] == "0.0.0.0"
    assert (
        exposed.info["http_bind"] == f"0.0.0.0:{http_port}"
        and exposed.info["http"] == f"127.0.0.1:{http_port}"
    )
    assert (
        exposed.info["grpc_bind"] == f"0.0.0.0:{grpc_port}"
        and exposed.info["grpc"] == f"127.0.0.1:{grpc_port}"
    )
    text = _ready_human(exposed.info)
    assert f"HTTP 0.0.0.0:{http_port} (connect: 127.0.0.1:{http_port})" in text, text
    assert f"gRPC 0.0.0.0:{grpc_port} (connect: 127.0.0.1:{grpc_port})" in text, text
    assert loopback.info["http_bind"] == loopback.info["http"]
    assert f"HTTP {loopback.info['http']}  gRPC {loopback.info['grpc']}  " in _ready_human(loopback.info)
    with socket.create_connection(("127.0.0.1", http_port), timeout=10):
        pass  # what it says is where it listens


def _infer_version(url: str, path: str) -> tuple[int, dict[str, Any]]:
    status, text = request(url, "POST", path, infer_body([1, 3, 32, 32], data=[0.0] * 3072))
    return status, json.loads(text)


def test_a_generation_retired_while_served_stops_being_served(
    tiny_run: Path, tmp_path: Path, emb_home: Path
) -> None:
    """Red team, LOW: after ``emb registry retire tiny-v2 --force``, ``emb serve --watch`` kept serving it."""
    from publishing.publish import publish
    from registry import Registry

    repo = tmp_path / "repo"
    assert publish(tiny_run, "tiny-v1", repository=repo).triton_version == 1
    assert publish(tiny_run, "tiny-v2", parents=["tiny-v1"], repository=repo).triton_version == 2
    serve = Serve(tmp_path, repo, "127.0.0.1", home=emb_home, watch=True)
    try:
        status, out = _infer_version(serve.http, "/v2/models/tiny/infer")
        assert status == 200 and out["model_version"] == "2", out
        retire = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "registry",
                "retire",
                "tiny-v2",
                "--force",
                "--reason",
                "red team",
            ],
            cwd=ROOT,
            env={**os.environ, "EMB_HOME": str(emb_home)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert retire.returncode == 0, retire.stderr
        start = time.monotonic()
        while _infer_version(serve.http, "/v2/models/tiny/versions/2/infer")[0] == 200:
            assert time.monotonic() - start < 15, "version 2 is still served"
            time.sleep(0.2)
        status, out = _infer_version(serve.http, "/v2/models/tiny/infer")
        assert status == 200 and out["model_version"] == "1", out
        assert _infer_version(serve.http, "/v2/models/tiny/versions/1/infer")[0] == 200
        err = serve.wait_stderr("removed tiny-v2: retired in the registry")
        assert "reloaded 'tiny'" in err and "Traceback" not in err
        assert "retired in the registry" in Path(serve.info["log"]).read_text()
        with Registry() as reg:  # the last one too: the model has no version left and is unloaded
            reg.retire("tiny-v1", reason="red team", force=True)
        start = time.monotonic()
        while request(serve.http, "GET", "/v2/models/tiny/ready")[0] == 200:
            assert time.monotonic() - start < 15, "tiny is still served"
            time.sleep(0.2)
        assert _infer_version(serve.http, "/v2/models/tiny/infer")[0] != 200
        assert "unloaded 'tiny'" in serve.wait_stderr("unloaded 'tiny'")
        assert request(serve.http, "GET", "/v2/health/live")[0] == 200
    finally:
        serve.stop()
