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
from typing import ClassVar

import pytest

from cli.serve import Backoff, exit_reason
from embsdk.serving.guard import HttpGuard, RequestRejected, check_infer_header, normalize_target
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
    seen: ClassVar[list[str]] = []  # paths received, in order

    def do_POST(self) -> None:
        self.seen.append(self.path)
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
    guard: tuple[HttpGuard, ThreadingHTTPServer],
) -> None:
    """Over the bound, a new connection evicts the longest-idle one (it used to be closed unanswered)."""
    g = HttpGuard(
        "127.0.0.1", free_port(), upstream_port=guard[0].upstream_port, max_bytes=LIMIT, max_connections=2
    )
    g.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", g.port), timeout=10) for _ in range(2)]
        time.sleep(0.5)  # both are accepted and hold their slots
        assert _post(g.port, header([1, 3, 32, 32]))[0] == 200
        assert idle[0].recv(1024) == b"", "the longest-idle connection was evicted"
        idle[1].sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle[1].recv(1024).startswith(b"HTTP/1.1 200"), "the other one is still served"
        for s in idle:
            s.close()
    finally:
        g.stop()


# ---------------------------------------------------------------------------------------------- request targets
@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("GET", "/v2/health/ready", "/v2/health/ready"),
        ("POST", "/v2/models/tiny/inf%65r", "/v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny/%69%6E%66%65%72", "/v2/models/tiny/infer"),
        ("POST", "/v2//models///tiny/infer", "/v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny/./infer", "/v2/models/tiny/infer"),
        ("POST", "/v2/models/x/../tiny/infer", "/v2/models/tiny/infer"),
        ("POST", "/v2/models/x/%2e%2E/tiny/infer", "/v2/models/tiny/infer"),
        ("POST", "/../../v2/models/tiny/infer", "/v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny/infer?x=1", "/v2/models/tiny/infer?x=1"),
        ("POST", "/v2/models/a%2fb/infer", "/v2/models/a%2Fb/infer"),  # an escaped '/' stays escaped
        ("GET", "/v2/models/tiny/ready/", "/v2/models/tiny/ready/"),
        ("OPTIONS", "*", "*"),
    ],
)
def test_request_targets_are_normalized(method: str, target: str, expected: str) -> None:
    assert normalize_target(method, target) == expected


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "http://x/v2/models/tiny/infer"),
        ("POST", "HTTP://X:1/v2/models/tiny/versions/1/infer"),
        ("POST", "hTtP://x/v2/models/tiny/infer"),
        ("CONNECT", "127.0.0.1:8000"),
        ("POST", "*"),
        ("POST", "//v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny/infer#x"),
        ("POST", "v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny/infer%"),
        ("POST", "/v2/models/tiny/infer%zz"),
        ("POST", "/v2/models/tiny/infer\\x"),
        ("POST", "/v2/models/tiny/infer\x7f"),
    ],
)
def test_other_request_target_forms_are_refused(method: str, target: str) -> None:
    with pytest.raises(RequestRejected) as err:
        normalize_target(method, target)
    assert err.value.status == 400


def _raw(port: int, data: bytes, n_responses: int = 1, timeout: float = 10) -> list[bytes]:
    """Send raw bytes, read ``n_responses`` responses (status lines), or until the guard closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf, out = b"", []
        while len(out) < n_responses:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = int(
                next(
                    (
                        ln.split(b":")[1]
                        for ln in head.split(b"\r\n")
                        if ln.lower().startswith(b"content-length")
                    ),
                    b"0",
                )
            )
            while len(buf) < length:
                buf += s.recv(65536)
            out.append(head.split(b"\r\n")[0] + b" " + buf[:length])
            buf = buf[length:]
        return out


def _raw_post(target: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode("latin-1") + body


def test_the_guard_checks_bodies_whatever_the_target_says(
    guard: tuple[HttpGuard, ThreadingHTTPServer],
) -> None:
    g, _ = guard
    huge = header([10**9, 3, 64, 64])
    for target in (
        "http://x/v2/models/tiny/infer",
        "HTTP://X:1/v2/models/tiny/versions/1/infer",
        "//v2/models/tiny/infer",
        "/v2/models/tiny/infer#x",
    ):
        (answer,) = _raw(g.port, _raw_post(target, huge))
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"origin-form" in answer or b"fragment" in answer, answer
    for target in (  # normalized: recognized as infer; anything else with a JSON body is checked as well
        "/v2/models/tiny/inf%65r",
        "/v2/models/tiny/./infer",
        "/V2/MODELS/tiny/INFER",
        "/v2/models/tiny/infer?x",
        "/v2/health/ready",
        "/v2/repository/index",
        "/anything",
    ):
        (answer,) = _raw(g.port, _raw_post(target, huge))
        assert answer.startswith(b"HTTP/1.1 400") and b"at most" in answer, (target, answer)
        (answer,) = _raw(g.port, _raw_post(target, b" \r\n" + huge))
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer)
        binary = huge + b"\0" * 16
        (answer,) = _raw(
            g.port, _raw_post(target, binary, f"Inference-Header-Content-Length: {len(huge)}\r\n")
        )
        assert answer.startswith(b"HTTP/1.1 400") and b"at most" in answer, (target, answer)
        gz = gzip.compress(huge)
        (answer,) = _raw(g.port, _raw_post(target, gz, "Content-Encoding: gzip\r\n"))
        assert answer.startswith(b"HTTP/1.1 400") and b"at most" in answer, (target, answer)
    for value in ("\xb2", "1e3", "-1", "0x10"):  # '²'.isdigit() is True, int('²') raises
        odd = f"POST /v2/x HTTP/1.1\r\nContent-Length: {value}\r\n\r\n".encode("latin-1")
        assert _raw(g.port, odd)[0].startswith(b"HTTP/1.1 400"), value
        odd = _raw_post("/v2/x", huge, f"Inference-Header-Content-Length: {value}\r\n")
        assert _raw(g.port, odd)[0].startswith(b"HTTP/1.1 400"), value
    twice = _raw_post(
        "/v2/x", huge, "Inference-Header-Content-Length: 5\r\ninference-header-content-length: 6\r\n"
    )
    assert _raw(g.port, twice)[0].startswith(b"HTTP/1.1 400")
    # pipelined after a good request: the good one is answered, the bad one refused
    good = _raw_post("/v2/models/tiny/infer", header([1, 3, 32, 32]))
    answers = _raw(g.port, good + _raw_post("http://x/v2/models/tiny/infer", huge), n_responses=2)
    assert answers[0].startswith(b"HTTP/1.1 200") and answers[1].startswith(b"HTTP/1.1 400"), answers
    answers = _raw(g.port, good + _raw_post("/v2/models/tiny/./infer", huge) + good, n_responses=3)
    assert [a[:12] for a in answers] == [b"HTTP/1.1 200", b"HTTP/1.1 400", b"HTTP/1.1 200"], answers
    # tritonserver gets the normalized origin-form path
    (answer,) = _raw(g.port, _raw_post("/v2//models/tiny/x/../inf%65r", header([1, 3, 32, 32])))
    assert json.loads(answer.split(b" ", 3)[3])["path"] == "/v2/models/tiny/infer"
    assert _post(g.port, b"x" * 100, path="/v2/repository/index")[0] == 200  # not JSON: not parsed


# ---------------------------------------------------------------------------------------------- slow clients
def _trickle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nX: ")
        socks.append(s)
    return socks


def test_trickling_connections_do_not_lock_clients_out(
    guard: tuple[HttpGuard, ThreadingHTTPServer],
) -> None:
    g = HttpGuard(
        "127.0.0.1", free_port(), upstream_port=guard[0].upstream_port, max_bytes=LIMIT, max_connections=8
    )
    g.start()
    try:
        slow = _trickle(g.port, 8)
        stop = threading.Event()

        def keep_trickling() -> None:
            while not stop.wait(0.5):
                for s in slow:
                    try:
                        s.sendall(b"x")
                    except OSError:
                        pass

        threading.Thread(target=keep_trickling, daemon=True).start()
        time.sleep(1)
        for _ in range(3):
            start = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
            conn.request("GET", "/v2/health/ready")
            assert conn.getresponse().status == 200
            conn.close()
            assert time.monotonic() - start < 3
        stop.set()
    finally:
        g.stop()


def test_a_request_gets_a_total_deadline_however_it_trickles(
    guard: tuple[HttpGuard, ThreadingHTTPServer],
) -> None:
    g = HttpGuard(
        "127.0.0.1",
        free_port(),
        upstream_port=guard[0].upstream_port,
        max_bytes=LIMIT,
        header_timeout=1.5,
        min_rate=1000,
    )
    g.start()
    _Echo.seen.clear()
    try:
        (headers,) = _trickle(g.port, 1)
        body = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        body.sendall(b"POST /v2/x HTTP/1.1\r\nContent-Length: 2000\r\n\r\n")  # 1.5 s + 2 s allowed
        start, closed = time.monotonic(), {}
        while len(closed) < 2 and time.monotonic() - start < 10:
            for name, s in (("headers", headers), ("body", body)):
                if name in closed:
                    continue
                try:
                    s.sendall(b"x")  # one byte every 0.2 s: the per-read timeout never fires
                except OSError:
                    closed[name] = time.monotonic() - start
            time.sleep(0.2)
        assert 1 < closed["headers"] < 3 and 3 < closed["body"] < 6, closed
        headers.close()
        body.close()
        assert _Echo.seen == [], "nothing of the requests cut short reached the upstream"
        assert _post(g.port, header([1, 3, 32, 32]))[0] == 200
    finally:
        g.stop()
