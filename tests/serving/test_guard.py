"""The HTTP guard in front of tritonserver and the supervisor's backoff (no tritonserver needed)."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.serve import Backoff, exit_reason
from embsdk.serving.guard import HttpGuard, RequestRejected, check_infer_header
from embsdk.serving.server import free_port

LIMIT = 1 << 20
INFER = "/v2/models/unified/versions/1/infer"


def header(shape: object, datatype: object = "FP32") -> bytes:
    return json.dumps(
        {"inputs": [{"name": "image", "shape": shape, "datatype": datatype, "data": [0]}]}
    ).encode()


@pytest.mark.parametrize(
    "body",
    [
        header([1, 3, 32, 32]),
        header([0]),
        header([256, 1024], "FP32"),
        header([LIMIT], "BYTES"),
        b'{"inputs": []}',
        b"{}",
    ],
)
def test_requests_within_the_bound_pass(body: bytes) -> None:
    check_infer_header(body, LIMIT)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (header([1_000_000_000, 3, 64, 64]), "at most 1,048,576 bytes"),
        (header([257, 1024]), "at most"),
        (header([2**64 + 1]), "at most"),
        (header([-1, 3]), "non-negative integers"),
        (header([1.0, 3]), "non-negative integers"),
        (header([True]), "non-negative integers"),
        (header("1,3"), "non-negative integers"),
        (header([1], "FP128"), "unknown datatype"),
        (
            b'{"inputs": [{"name": "a", "shape": [10000000000], "shape": [1], "datatype": "FP32"}]}',
            "repeats a key",
        ),
        (b'{"inputs": {}}', "must be a list"),
        (b'{"inputs": [1]}', "JSON object"),
        (b"\xff{", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_or_oversized_requests_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(RequestRejected, match=match) as err:
        check_infer_header(body, LIMIT)
    assert err.value.status == 400


class _Echo(BaseHTTPRequestHandler):
    """Stands in for tritonserver: echoes the method, path, admin header and body length."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out = json.dumps(
            {"path": self.path, "key": self.headers.get("admin-key"), "length": len(body)}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def guard() -> Iterator[tuple[HttpGuard, ThreadingHTTPServer]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    g = HttpGuard("127.0.0.1", free_port(), upstream_port=upstream.server_address[1], max_bytes=LIMIT)
    g.start()
    yield g, upstream
    g.stop()
    upstream.shutdown()
    upstream.server_close()


def _post(
    port: int, body: bytes, headers: dict[str, str] | None = None, path: str = INFER
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=body, headers=headers or {})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def test_guard_forwards_good_requests_and_answers_bad_ones_itself(
    guard: tuple[HttpGuard, ThreadingHTTPServer],
) -> None:
    g, upstream = guard
    status, text = _post(g.port, header([1, 3, 32, 32]), {"admin-key": "k"})
    assert status == 200 and json.loads(text) == {
        "path": INFER,
        "key": "k",
        "length": len(header([1, 3, 32, 32])),
    }
    assert _post(g.port, header([10**9, 3, 64, 64]))[0] == 400
    assert (
        _post(g.port, header([10**9, 3, 64, 64]), path=INFER + "?x=1")[0] == 400
    )  # tritonserver ignores the query
    assert _post(g.port, gzip.compress(header([10**9, 3, 64, 64])), {"Content-Encoding": "gzip"})[0] == 400
    assert _post(g.port, gzip.compress(b" " * (2 * LIMIT)), {"Content-Encoding": "gzip"})[0] == 413
    big = header([1, 3, 32, 32])
    assert _post(g.port, big + b"\0" * 64, {"Inference-Header-Content-Length": str(len(big))})[0] == 200
    assert _post(g.port, big, {"Inference-Header-Content-Length": str(len(big) + 1)})[0] == 400
    assert _post(g.port, b"x" * 100, path="/v2/repository/index")[0] == 200  # not an infer: not parsed
    with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
        s.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * LIMIT}\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
        s.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 411")
    upstream.shutdown()
    upstream.server_close()  # tritonserver is down: unhealthy, not a hang
    status, text = _post(g.port, b"", path="/v2/health/ready")
    assert status == 503 and b"not running" in text


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_uptime() -> None:
    b = Backoff(first=1, cap=8, reset_after=60)
    assert [b.next(uptime=1) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert b.next(uptime=61) == 1 and b.next(uptime=0) == 2


def test_exit_reason_names_the_signal() -> None:
    assert (
        exit_reason(-9) == "signal SIGKILL"
        and exit_reason(-6) == "signal SIGABRT"
        and exit_reason(1) == "exit code 1"
    )


def test_guard_serves_a_bounded_number_of_connections(
    guard: tuple[HttpGuard, ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embsdk.serving import guard as guard_module

    monkeypatch.setattr(guard_module._GuardServer, "max_connections", 2)
    g = HttpGuard("127.0.0.1", free_port(), upstream_port=guard[0].upstream_port, max_bytes=LIMIT)
    g.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", g.port), timeout=10) for _ in range(2)]
        time.sleep(0.5)  # both are accepted and hold their slots
        with socket.create_connection(("127.0.0.1", g.port), timeout=10) as third:
            assert third.recv(1024) == b"", "over the bound: closed without an answer"
        idle.pop().close()
        time.sleep(0.5)
        assert _post(g.port, header([1, 3, 32, 32]))[0] == 200
        idle.pop().close()
    finally:
        g.stop()
