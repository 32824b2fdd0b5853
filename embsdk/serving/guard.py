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
* 400 for a request target that is not origin-form (``/path``; ``OPTIONS *`` excepted): tritonserver reduces
  an absolute-form target (``http://x/v2/...``) to its path, so a guard deciding on the raw target would be
  bypassed. The path is normalized (unreserved ``%XX`` decoded, repeated slashes and dot segments removed)
  before anything is decided, and the normalized path is what tritonserver gets;
* the infer check does not trust the path: every body that could be an infer request (a JSON object, or any
  body with ``Inference-Header-Content-Length``) is checked, whatever the path says;
* 503 while tritonserver is down (``emb serve`` is restarting it), so health probes report unhealthy.

Slow clients: a request's headers must arrive within ``header_timeout`` (10 s) of its first byte, its body
within ``header_timeout`` plus one second per ``min_rate`` bytes (256 KiB/s), and a connection idle between
requests is closed after ``idle_timeout`` (120 s): a watchdog thread shuts down the connections past their
deadline, whatever trickle of bytes they send. At most ``max_connections`` (256) are served at once (one thread
each); when all are taken, a new connection evicts the one idle (or stuck before its request is complete)
for the longest, so trickling connections cannot lock clients out. Clients that disconnect early are
logged at DEBUG, without a traceback.

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
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HttpGuard",
    "RequestRejected",
    "check_infer_header",
    "normalize_target",
]

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
# matched case-insensitively on the normalized path (tritonserver itself is case-sensitive: be broader than it)
_INFER_PATH = re.compile(
    r"^/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate|generate_stream)/?$", re.IGNORECASE
)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")  # RFC 3986 pchar and "/"
_QUERY_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_JSON_LEAD = b" \t\r\n\x0b\x0c\xef\xbb\xbf"  # whitespace (and a UTF-8 BOM) before a JSON document
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
_SINGLE_HEADERS = (_HEADER_LENGTH, "content-length", "content-encoding", "transfer-encoding")


def _is_count(raw: str) -> bool:
    """A header value that is a plain decimal count (``str.isdigit`` alone also takes ``'²'``)."""
    raw = raw.strip()
    return raw.isascii() and raw.isdigit()


def normalize_target(method: str, target: str) -> str:
    """The origin-form target to forward for the raw request ``target``, normalized.

    Only origin-form (``/path[?query]``, one leading slash) is accepted, and ``*`` for ``OPTIONS``. The path gets
    percent-encoded unreserved characters decoded (other escapes kept, in upper case), repeated slashes
    collapsed and ``.``/``..`` segments removed: the guard decides on, and forwards, this form.

    Raises:
        RequestRejected: 400 for absolute-form, authority-form, ``*`` with another method, a fragment,
            characters outside RFC 3986, or a malformed ``%`` escape.
    """
    if target == "*":
        if method == "OPTIONS":
            return target
        raise RequestRejected(400, "the request target '*' is only accepted with OPTIONS")
    if not target.startswith("/") or target.startswith("//"):
        raise RequestRejected(
            400, "only origin-form request targets are accepted (a path starting with one '/')"
        )
    if "#" in target:
        raise RequestRejected(400, "a request target has no fragment ('#')")
    path, sep, query = target.partition("?")
    if not _PATH_CHARS.match(path) or not _QUERY_CHARS.match(query) or _BAD_PCT.search(target):
        raise RequestRejected(400, "the request target has characters outside RFC 3986")

    def unescape(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in _UNRESERVED else f"%{m.group(1).upper()}"

    segments: list[str] = []
    for seg in _PCT.sub(unescape, path).split("/")[1:]:
        if seg in {"", "."}:
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg)
    trailing = "/" if segments and path.endswith("/") else ""
    return "/" + "/".join(segments) + trailing + sep + query


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


class _ClientGone(Exception):
    """The client closed (or was cut off) before its request was complete: drop the connection quietly."""


class _Handler(BaseHTTPRequestHandler):
    """One client connection (keep-alive): check each request, forward it upstream on one kept connection."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # a backstop per socket read/write; the watchdog enforces the real deadlines
    server: _GuardServer
    _upstream: http.client.HTTPConnection | None = None
    target = "/"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )  # headers and body go out separately
        self.connection.settimeout(self.server.idle_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not logged (tritonserver has its own log)

    def _phase(self, phase: str, seconds: float | None) -> None:
        self.server.set_phase(self.request, phase, seconds)

    def handle_one_request(self) -> None:
        self._phase("idle", self.server.idle_timeout)
        try:
            first = self.rfile.peek(1)  # type: ignore[attr-defined]  # the request's first byte (or EOF)
        except (TimeoutError, OSError, ValueError):
            first = b""
        if not first:
            self.close_connection = True
            return
        self._phase("headers", self.server.header_timeout)  # the whole header block within this
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        words = self.requestline.split()
        self.target = words[1] if len(words) >= 2 else "/"  # raw: the stdlib rewrites a leading '//'
        return True

    def _reply(self, status: int, message: str, *, close: bool = False) -> None:
        body = json.dumps({"error": message}).encode()
        self._phase("writing", self.server.transfer_seconds(len(body)))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        for name in _SINGLE_HEADERS:
            if len(self.headers.get_all(name) or []) > 1:
                raise RequestRejected(400, f"the request repeats the {name} header")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestRejected(411, "chunked request bodies are not accepted; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.command in {"POST", "PUT"}:
                raise RequestRejected(411, "a request body needs Content-Length")
            return b""
        if not _is_count(raw):
            raise RequestRejected(400, "bad Content-Length")
        length = int(raw)
        if length > self.server.max_bytes + 2**20:  # room for the JSON header of a binary request
            raise RequestRejected(413, f"request body of {length:,} bytes exceeds {self.server.max_bytes:,}")
        self._phase("body", self.server.transfer_seconds(length))
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError, ValueError):
            raise _ClientGone from None
        if len(body) != length:  # the client closed, or the watchdog cut a body that came too slowly
            raise _ClientGone
        return body

    def _check(self, body: bytes, path: str) -> None:
        """Refuse what could make tritonserver allocate for an oversized input; the path is not trusted."""
        infer = self.command == "POST" and _INFER_PATH.match(path.split("?", 1)[0]) is not None
        raw = self.headers.get(_HEADER_LENGTH)
        if not body and raw is None and not infer:
            return
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        body = _decoded(body, encoding, self.server.max_bytes)
        if raw is not None:
            if not _is_count(raw) or int(raw) > len(body):
                raise RequestRejected(400, f"bad {_HEADER_LENGTH}")
            body = body[: int(raw)]
        elif not infer and body.lstrip(_JSON_LEAD)[:1] not in {b"{", b"/"}:
            return  # not a JSON object: tritonserver cannot take it for an infer request
        check_infer_header(body, self.server.max_bytes)

    def _exchange(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept upstream connection (opened on first use)."""
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=600)
            self._upstream.connect()
            self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream.request(self.command, path, body=body, headers=headers)
        resp = self._upstream.getresponse()
        return resp, resp.read()

    def _close_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _forward(self, path: str, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in {"POST", "PUT"}:
            headers["Content-Length"] = str(len(body))
        self._phase("busy", None)  # tritonserver is working on it: not evictable, no client deadline
        for attempt in (0, 1):  # a kept upstream connection may have been closed by the server: retry once
            try:
                resp, data = self._exchange(path, body, headers)
                break
            except (http.client.HTTPException, OSError):
                self._close_upstream()
                if attempt:
                    self._reply(503, "tritonserver is not running (emb serve restarts it); try again shortly")
                    return
        self._phase("writing", self.server.transfer_seconds(len(data)))
        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refused(self, exc: RequestRejected, *, close: bool) -> None:
        logger.info(
            "guard refused %s %r from %s: %s %s",
            self.command,
            self.target[:200],
            self.client_address[0],
            exc.status,
            exc.message,
        )
        self._reply(exc.status, exc.message, close=close)

    def _handle(self) -> None:
        if self.server.is_cut(self.request):  # evicted or late mid-headers: what was parsed is not a request
            self.close_connection = True
            return
        try:
            path = normalize_target(self.command, self.target)
            body = self._read_body()
        except RequestRejected as exc:  # the body was not read: the connection cannot be reused
            self._refused(exc, close=True)
            return
        except _ClientGone:
            logger.debug("guard: %s closed before its request was complete", self.client_address[0])
            self.close_connection = True
            return
        try:
            self._check(body, path)
        except RequestRejected as exc:
            self._refused(exc, close=False)
            return
        self._forward(path, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def finish(self) -> None:
        self._close_upstream()
        try:
            super().finish()
        except OSError as exc:  # flushing to a client that went away
            logger.debug("guard: %s went away: %s", self.client_address[0], exc)


class _Slot:
    """What the watchdog and the eviction know of one served connection."""

    __slots__ = ("deadline", "expired", "phase", "since")

    def __init__(self, now: float, idle_timeout: float) -> None:
        self.phase, self.since, self.expired = "new", now, False
        self.deadline: float | None = now + idle_timeout


# phases a connection may be evicted in, first choice first (longest in that phase first)
_EVICTABLE = {"new": 0, "idle": 0, "headers": 1, "body": 2}


def _cut(sock: socket.socket) -> None:
    """Wake the connection's thread (its reads return EOF) and make it close."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _GuardServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once; a watchdog enforces the deadlines."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    max_connections = 256
    header_timeout = 10.0
    idle_timeout = 120.0
    min_rate = 256 * 1024  # bytes/s a body (or a response) must at least move at
    max_bytes: int
    upstream_port: int

    def server_activate(self) -> None:
        super().server_activate()
        self._lock = threading.Lock()
        self._active: dict[socket.socket, _Slot] = {}
        self._closing = threading.Event()
        threading.Thread(target=self._watchdog, name="http-guard-watchdog", daemon=True).start()

    def transfer_seconds(self, nbytes: int) -> float:
        """The deadline for moving ``nbytes`` to or from a client."""
        return self.header_timeout + nbytes / self.min_rate

    def set_phase(self, sock: socket.socket, phase: str, seconds: float | None) -> None:
        now = time.monotonic()
        with self._lock:
            slot = self._active.get(sock)
            if slot is not None and not slot.expired:
                slot.phase, slot.since = phase, now
                slot.deadline = None if seconds is None else now + seconds

    def is_cut(self, sock: socket.socket) -> bool:
        """True when the watchdog or an eviction has cut this connection."""
        with self._lock:
            slot = self._active.get(sock)
            return slot is None or slot.expired

    def _watchdog(self) -> None:
        while not self._closing.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [
                    (sock, slot)
                    for sock, slot in self._active.items()
                    if not slot.expired and slot.deadline is not None and now > slot.deadline
                ]
                for sock, slot in late:
                    slot.expired = True
                    _cut(sock)
            for _sock, slot in late:
                logger.debug("guard: closed a connection past its %s deadline", slot.phase)

    def _evict(self) -> bool:
        """Cut the connection idle (or stuck mid-request) for the longest; False when every one is busy."""
        victims = [
            (_EVICTABLE[slot.phase], slot.since, sock)
            for sock, slot in self._active.items()
            if slot.phase in _EVICTABLE
        ]
        if not victims:
            return False
        _, since, sock = min(victims, key=lambda v: (v[0], v[1]))
        slot = self._active.pop(sock)
        slot.expired = True
        _cut(sock)
        logger.info(
            "guard: %d connections: evicted one %s for %.0f s",
            self.max_connections,
            slot.phase,
            time.monotonic() - since,
        )
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if len(self._active) >= self.max_connections and not self._evict():
                logger.info("guard: %d connections busy: refused one", self.max_connections)
                self.shutdown_request(request)
                return
            self._active[request] = _Slot(time.monotonic(), self.idle_timeout)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._active.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away mid-request or mid-reply (or was cut off)
            logger.debug("guard: %s went away: %r", client_address[0], exc)
        else:
            logger.exception("guard: unexpected error serving %s", client_address[0])

    def server_close(self) -> None:
        if hasattr(self, "_closing"):
            self._closing.set()
        super().server_close()


class HttpGuard:
    """Listen on ``host:port`` and forward checked requests to tritonserver's HTTP port on loopback.

    Args:
        host, port: the public HTTP address (what clients use).
        upstream_port: tritonserver's HTTP port on 127.0.0.1.
        max_bytes: the largest request body and the largest declared input.
        max_connections: connections served at once (more evict the longest-idle one).
        header_timeout: seconds from a request's first byte to the end of its headers.
        idle_timeout: seconds a connection may wait for its next request.
        min_rate: bytes per second a body or a response must at least move at (after ``header_timeout``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        upstream_port: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_connections: int | None = None,
        header_timeout: float | None = None,
        idle_timeout: float | None = None,
        min_rate: int | None = None,
    ) -> None:
        self.host, self.port, self.upstream_port, self.max_bytes = host, port, upstream_port, max_bytes
        self.limits = {
            k: v
            for k, v in {
                "max_connections": max_connections,
                "header_timeout": header_timeout,
                "idle_timeout": idle_timeout,
                "min_rate": min_rate,
            }.items()
            if v is not None
        }
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
        server = cls((self.host, self.port), _Handler, bind_and_activate=False)
        for key, value in self.limits.items():
            setattr(server, key, value)
        try:
            server.server_bind()
            server.server_activate()
        except BaseException:
            server.server_close()
            raise
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
