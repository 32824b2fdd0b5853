"""An HTTP guard in front of tritonserver: bounds infer requests before Triton allocates for them.

tritonserver 2.51 sizes the buffer of a JSON infer input from its declared ``shape`` before checking the
shape against the model (``serialized.resize(element_count * dtype_size)`` in ``http_server.cc``), so one
unauthenticated request with ``"shape": [1000000000, 3, 64, 64]`` aborts it (``std::bad_alloc``); the
``--http-max-input-size`` option that bounds this only exists from 2.59. gRPC is not affected (it sizes from
the bytes actually received).

The guard listens on the public HTTP address and forwards every request to tritonserver on a loopback port,
except that it answers itself:

* 411 for a body without ``Content-Length``, 413 for a body over ``max_bytes`` (not read);
* 400 for an infer request whose JSON header does not parse (or repeats a key: Triton's parser takes the first,
  Python's the last) or declares an input of more than ``max_bytes`` (``prod(shape) * dtype size``);
* 503 while tritonserver is down (``emb serve`` is restarting it), so health probes report unhealthy.

A connection idle for 120 s is closed, and at most 256 are served at once (one thread each).

Example:
    >>> guard = HttpGuard("127.0.0.1", 8000, upstream_port=41234)   # doctest: +SKIP
    >>> guard.start(); ...; guard.stop()
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_MAX_BYTES", "HttpGuard", "RequestRejected", "check_infer_header"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 2**20  # what tritonserver >= 2.59 uses for --http-max-input-size
DTYPE_BYTES = {
    "BOOL": 1,
    "UINT8": 1,
    "INT8": 1,
    "UINT16": 2,
    "INT16": 2,
    "FP16": 2,
    "BF16": 2,
    "UINT32": 4,
    "INT32": 4,
    "FP32": 4,
    "UINT64": 8,
    "INT64": 8,
    "FP64": 8,
    "BYTES": 1,
}
_INFER_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate|generate_stream)/?$")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)  # the guard answers 100-continue itself
_HEADER_LENGTH = "inference-header-content-length"


class RequestRejected(Exception):
    """The guard answers the request itself with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise RequestRejected(
            400, f"request JSON repeats a key ({min(k for k in keys if keys.count(k) > 1)!r})"
        )
    return dict(pairs)


def _input_bytes(tensor: Any, max_bytes: int) -> int:
    """Bytes that ``tensor``'s declared shape and datatype ask Triton to allocate (stops counting past the bound)."""
    if not isinstance(tensor, dict):
        raise RequestRejected(400, "each request input must be a JSON object")
    shape, dtype = tensor.get("shape"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestRejected(
            400, f"input {tensor.get('name')!r}: 'shape' must be a list of non-negative integers"
        )
    size = DTYPE_BYTES.get(dtype) if isinstance(dtype, str) else None
    if size is None:
        raise RequestRejected(400, f"input {tensor.get('name')!r}: unknown datatype {dtype!r}")
    total = size
    for d in shape:
        total *= d
        if total > max_bytes:
            break
    return total


def check_infer_header(header: bytes, max_bytes: int) -> None:
    """Refuse an infer request whose JSON header is malformed or declares an input over ``max_bytes``.

    Raises:
        RequestRejected: with the status and message to answer.
    """
    try:
        doc = json.loads(header, object_pairs_hook=_no_duplicates)
    except RequestRejected:
        raise
    except (ValueError, RecursionError):
        raise RequestRejected(400, "request is not valid JSON") from None
    inputs = doc.get("inputs", []) if isinstance(doc, dict) else None
    if not isinstance(inputs, list):
        raise RequestRejected(400, "request 'inputs' must be a list")
    for tensor in inputs:
        if (n := _input_bytes(tensor, max_bytes)) > max_bytes:
            raise RequestRejected(
                400,
                f"input {tensor.get('name')!r} declares {n:,}+ bytes; this server accepts at most "
                f"{max_bytes:,} bytes per input (emb serve --max-request-mb)",
            )


def _decoded(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The body without its gzip/deflate content encoding, refused when it inflates past ``max_bytes``."""
    if encoding in {"", "identity"}:
        return body
    if encoding not in {"gzip", "deflate"}:
        raise RequestRejected(415, f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise RequestRejected(400, f"body is not valid {encoding}") from None
    if len(out) > max_bytes:
        raise RequestRejected(413, f"decompressed body exceeds {max_bytes:,} bytes")
    return out


class _Handler(BaseHTTPRequestHandler):
    """One client connection (keep-alive): check each request, forward it upstream on one kept connection."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds a client may stay silent mid-request or between requests
    server: _GuardServer
    _upstream: http.client.HTTPConnection | None = None

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )  # headers and body go out separately

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not logged (tritonserver has its own log)

    def _reply(self, status: int, message: str, *, close: bool = False) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestRejected(411, "chunked request bodies are not accepted; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.command in {"POST", "PUT"}:
                raise RequestRejected(411, "a request body needs Content-Length")
            return b""
        if not raw.strip().isdigit():
            raise RequestRejected(400, "bad Content-Length")
        length = int(raw)
        if length > self.server.max_bytes + 2**20:  # room for the JSON header of a binary request
            raise RequestRejected(413, f"request body of {length:,} bytes exceeds {self.server.max_bytes:,}")
        return self.rfile.read(length)

    def _check(self, body: bytes) -> None:
        if self.command != "POST" or not _INFER_PATH.match(self.path.split("?", 1)[0]):
            return
        body = _decoded(body, self.headers.get("Content-Encoding", "").strip().lower(), self.server.max_bytes)
        raw = self.headers.get(_HEADER_LENGTH)
        if raw is not None:
            if not raw.strip().isdigit() or int(raw) > len(body):
                raise RequestRejected(400, f"bad {_HEADER_LENGTH}")
            body = body[: int(raw)]
        check_infer_header(body, self.server.max_bytes)

    def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept upstream connection (opened on first use)."""
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=600)
            self._upstream.connect()
            self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream.request(self.command, self.path, body=body, headers=headers)
        resp = self._upstream.getresponse()
        return resp, resp.read()

    def _close_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in {"POST", "PUT"}:
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):  # a kept upstream connection may have been closed by the server: retry once
            try:
                resp, data = self._exchange(body, headers)
                break
            except (http.client.HTTPException, OSError):
                self._close_upstream()
                if attempt:
                    self._reply(503, "tritonserver is not running (emb serve restarts it); try again shortly")
                    return
        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except RequestRejected as exc:  # the body was not read: the connection cannot be reused
            logger.info(
                "guard refused %s %s from %s: %s %s",
                self.command,
                self.path,
                self.client_address[0],
                exc.status,
                exc.message,
            )
            self._reply(exc.status, exc.message, close=True)
            return
        try:
            self._check(body)
        except RequestRejected as exc:
            logger.info(
                "guard refused %s %s from %s: %s %s",
                self.command,
                self.path,
                self.client_address[0],
                exc.status,
                exc.message,
            )
            self._reply(exc.status, exc.message)
            return
        self._forward(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def finish(self) -> None:
        self._close_upstream()
        super().finish()


class _GuardServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once (more are closed at once)."""

    daemon_threads = True
    allow_reuse_address = True
    max_connections = 256
    max_bytes: int
    upstream_port: int

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HttpGuard:
    """Listen on ``host:port`` and forward checked requests to tritonserver's HTTP port on loopback.

    Args:
        host, port: the public HTTP address (what clients use).
        upstream_port: tritonserver's HTTP port on 127.0.0.1.
        max_bytes: the largest request body and the largest declared input.
    """

    def __init__(
        self, host: str, port: int, *, upstream_port: int, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.host, self.port, self.upstream_port, self.max_bytes = host, port, upstream_port, max_bytes
        self._server: _GuardServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread (idempotent)."""
        if self._server is not None:
            return
        cls = type(
            "_Server",
            (_GuardServer,),
            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET},
        )
        server = cls((self.host, self.port), _Handler)
        server.max_bytes, server.upstream_port = self.max_bytes, self.upstream_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"http-guard-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def retarget(self, upstream_port: int) -> None:
        """Forward to tritonserver on another loopback port from now on (a restarted server)."""
        self.upstream_port = upstream_port
        if self._server is not None:
            self._server.upstream_port = upstream_port

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
