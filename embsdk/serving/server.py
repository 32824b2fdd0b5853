"""Start, watch and stop a real tritonserver on a model repository (the CPU Python backend).

The server runs in its own process group and gets SIGTERM if this process dies (``PR_SET_PDEATHSIG``),
so no orphan server or stub outlives us. (The signal follows the *thread* that started it: start servers
from a thread that lives as long as they should.) Its Python-backend shared-memory regions get a unique prefix,
so a server that had to be killed can have exactly its own ``/dev/shm`` files removed.

Access: inference, health, metadata and model config are open. Triton's shared-memory, logging, trace and
statistics APIs always need the admin key (HTTP header ``admin-key``, gRPC metadata
``triton-grpc-protocol-admin-key``); off loopback the model-repository API (load/unload/index) needs it too.
The key is ``EMB_TRITON_ADMIN_KEY``, or a random one generated per server object and written to a 0600 file
(:attr:`TritonServer.key_file`). tritonserver 2.51 takes the key on its command line only, so local users
who can read ``/proc/<pid>/cmdline`` can read it; embsdk never logs or prints it.

Size bound: tritonserver's HTTP port sits behind :class:`~embsdk.serving.guard.HttpGuard`, which refuses
oversized infer requests before tritonserver allocates for them (2.51 aborts on a JSON input whose shape
declares more memory than it can allocate).

Metrics: off unless ``metrics_port`` is given; then tritonserver serves its Prometheus text
(``nv_inference_request_success``, latencies, ...) on ``http://<metrics_host>:<metrics_port>/metrics``.
That endpoint has no access control in tritonserver, so it binds to loopback unless ``metrics_host`` names
another address explicitly (it does not follow ``host``): a scraper on another machine is an explicit choice.

Events (start, ready, stop, restart, model reloads) are logged through :mod:`logging` (``embsdk.serving.server``).

Example:
    >>> with TritonServer(repository, http_port=0, grpc_port=0) as server:   # doctest: +SKIP
    ...     print(server.endpoints.grpc_url)
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from embsdk.config import get_settings
from embsdk.errors import ConfigError, ServerStartError
from embsdk.serving._tritonbin import TritonInstall, find_tritonserver
from embsdk.serving.engines import check_repository_engines
from embsdk.serving.guard import DEFAULT_MAX_BYTES, HttpGuard

__all__ = [
    "ADMIN_HEADER",
    "GRPC_ADMIN_METADATA",
    "LOOPBACK",
    "SHM_DIR",
    "SHM_PREFIX",
    "Endpoints",
    "TritonServer",
    "free_port",
    "restricted_apis",
]

logger = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
ADMIN_HEADER = "admin-key"
GRPC_ADMIN_METADATA = f"triton-grpc-protocol-{ADMIN_HEADER}"  # tritonserver prefixes gRPC restriction keys
# Triton API categories that need the admin key everywhere, and in addition off loopback
ALWAYS_RESTRICTED = ("shared-memory", "statistics", "trace", "logging")
OFF_LOOPBACK_RESTRICTED = ("model-repository",)
_KEY_CHARS = re.compile(r"^[!-~]+$")  # printable ASCII without spaces: a valid header value


def restricted_apis(host: str) -> tuple[str, ...]:
    """Triton API categories that need the admin key on a server bound to ``host``."""
    return ALWAYS_RESTRICTED + (() if host in LOOPBACK else OFF_LOOPBACK_RESTRICTED)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Endpoints:
    """Where a started server listens (``*_url`` in the ``host:port`` form tritonclient takes)."""

    host: str
    http_port: int
    grpc_port: int

    @property
    def client_host(self) -> str:
        """Where a local client connects (a wildcard or ``localhost`` bind is reached on 127.0.0.1)."""
        return "127.0.0.1" if self.host in {"0.0.0.0", "localhost"} else self.host

    @property
    def http_bind(self) -> str:
        """``host:port`` the HTTP port is bound to (e.g. ``0.0.0.0:8000``)."""
        return _host_port(self.host, self.http_port)

    @property
    def grpc_bind(self) -> str:
        """``host:port`` the gRPC port is bound to."""
        return _host_port(self.host, self.grpc_port)

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"


def _pdeathsig() -> Callable[[], None] | None:
    """``prctl(PR_SET_PDEATHSIG, SIGTERM)`` bound in the parent (the child must not load libraries after fork)."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:  # not glibc: no parent-death signal, the explicit stop() still cleans up
        return None

    def child_setup() -> None:  # runs in the child between fork and exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return child_setup


class TritonServer:
    """A tritonserver process on ``repository`` (default ``get_settings().triton_repository``).

    Args:
        repository: model repository folder (as written by :class:`triton_models.repository.ModelRepository`).
        host: address to bind; non-loopback requires ``admin_key`` (or ``EMB_TRITON_ADMIN_KEY``).
        http_port, grpc_port: ports; 0 picks free ones.
        models: Triton models (families) to load; default every model folder with a ``config.pbtxt``.
        ready_timeout: seconds to wait for readiness before killing it and raising.
        log_path: server log file (appended to); default ``$EMB_HOME/logs/tritonserver-<http port>.log``.
        admin_key: secret for the restricted APIs; default ``EMB_TRITON_ADMIN_KEY``, else a random one
            generated now and written to :attr:`key_file` (mode 0600) while the server runs.
        max_request_bytes: the HTTP guard's bound on a request body and on any input's declared size.
        metrics_port: serve tritonserver's Prometheus metrics on this port (0: a free one); None: metrics off.
        metrics_host: the address the metrics port binds to (default loopback, whatever ``host`` is).
    """

    def __init__(
        self,
        repository: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        models: list[str] | None = None,
        ready_timeout: float = 120.0,
        log_path: str | Path | None = None,
        admin_key: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_BYTES,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        settings = get_settings()
        self.repository = Path(repository or settings.triton_repository).expanduser().resolve()
        self.host = host
        self.restricted = host not in LOOPBACK  # the model-repository API needs the key too
        given = admin_key or settings.triton_admin_key
        if given is not None and not _KEY_CHARS.match(given):
            raise ConfigError(
                "EMB_TRITON_ADMIN_KEY must be printable ASCII without spaces (it is sent as a header)."
            )
        if max_request_bytes <= 0:
            raise ConfigError(f"max_request_bytes must be positive, not {max_request_bytes}.")
        self.key_generated = given is None
        self.admin_key: str = given or secrets.token_urlsafe(32)
        probe = "127.0.0.1" if host in {"0.0.0.0", "localhost"} else host
        self.endpoints = Endpoints(host, http_port or free_port(probe), grpc_port or free_port(probe))
        self.upstream_http_port = free_port("127.0.0.1")  # tritonserver's own HTTP port, behind the guard
        self.metrics_host = metrics_host
        metrics_probe = "127.0.0.1" if metrics_host in {"0.0.0.0", "localhost"} else metrics_host
        self.metrics_port: int | None = (
            None if metrics_port is None else (metrics_port or free_port(metrics_probe))
        )
        self.guard = HttpGuard(
            host, self.endpoints.http_port, upstream_port=self.upstream_http_port, max_bytes=max_request_bytes
        )
        self.models = models
        self.ready_timeout = ready_timeout
        self.log_path = (
            Path(log_path)
            if log_path
            else settings.home / "logs" / f"tritonserver-{self.endpoints.http_port}.log"
        )
        self.key_file = settings.home / "serve" / f"admin-key-{self.endpoints.http_port}"
        self.shm_prefix = f"{SHM_PREFIX}emb{os.getpid()}x{uuid.uuid4().hex[:8]}_"
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle
    def model_names(self) -> list[str]:
        if self.models is not None:
            return list(self.models)
        if not self.repository.is_dir():
            return []
        return sorted(p.name for p in self.repository.iterdir() if (p / "config.pbtxt").is_file())

    def command(self, install: TritonInstall | None = None) -> list[str]:
        """The tritonserver command line (it contains the admin key: don't log it)."""
        install = install or find_tritonserver()
        ep = self.endpoints
        apis = ",".join(restricted_apis(self.host))
        cmd = [
            str(install.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={install.backend_dir}",
            "--http-address=127.0.0.1",
            f"--http-port={self.upstream_http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={ep.grpc_port}",
            *self._metrics_flags(),
            "--model-control-mode=explicit",
            "--exit-timeout-secs=10",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        cmd += [f"--load-model={m}" for m in self.model_names()]
        cmd += [
            f"--http-restricted-api={apis}:{ADMIN_HEADER}={self.admin_key}",
            f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={self.admin_key}",
        ]
        return cmd

    def _metrics_flags(self) -> list[str]:
        if self.metrics_port is None:
            return ["--allow-metrics=false"]
        return [
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--metrics-address={self.metrics_host}",
            f"--metrics-port={self.metrics_port}",
        ]

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` (Prometheus text), or None when metrics are off."""
        if self.metrics_port is None:
            return None
        client = "127.0.0.1" if self.metrics_host in {"0.0.0.0", "localhost"} else self.metrics_host
        return f"http://{client}:{self.metrics_port}/metrics"

    def _write_key_file(self) -> None:
        """Write a generated key to :attr:`key_file` (0600 in a 0700 folder), atomically."""
        if not self.key_generated:
            return
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.key_file.parent, 0o700)
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.admin_key + "\n")
        os.replace(tmp, self.key_file)

    def start(self) -> Endpoints:
        """Start the server and wait until it and every model are ready.

        Raises:
            ServerStartError: it exited, or was not ready within ``ready_timeout`` (the log tail is in the message).
            EngineIncompatible: a TensorRT plan in the repository was built for another GPU/TensorRT/CUDA.
            MissingExtraError: tritonserver is not installed.
        """
        if not self.repository.is_dir():
            raise ServerStartError(
                f"Model repository {self.repository} does not exist; publish a generation first (emb publish)."
            )
        check_repository_engines(
            self.repository, self.model_names()
        )  # refuse mismatched TensorRT plans up front
        self._write_key_file()
        try:
            self.guard.start()
        except OSError as exc:
            raise ServerStartError(
                f"cannot listen on {self.host}:{self.endpoints.http_port}: {exc}"
            ) from None
        try:
            self._spawn()
        except BaseException:
            logger.info("tritonserver did not start on %s; stopping it", self.repository)
            self.stop(timeout=5)
            raise
        logger.info(
            "tritonserver ready: pid %s, HTTP %s (guard; connect: %s), gRPC %s (connect: %s), metrics %s, models %s",
            self.proc.pid if self.proc else None,
            self.endpoints.http_bind,
            self.endpoints.http_url,
            self.endpoints.grpc_bind,
            self.endpoints.grpc_url,
            self.metrics_url or "off",
            ", ".join(self.model_names()) or "none",
        )
        return self.endpoints

    def _spawn(self) -> None:
        """Start the tritonserver process (the guard already listens) and wait until it is ready."""
        install = find_tritonserver()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = install.environment()
        env.pop(
            "EMB_TRITON_ADMIN_KEY", None
        )  # the server and its model stubs never need it from the environment
        logger.info("starting tritonserver on %s (log: %s)", self.repository, self.log_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(install),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_pdeathsig(),  # noqa: PLW1509
            )
        self._wait_ready()

    def restart(self) -> None:
        """Start tritonserver again after it died: reap it and its stubs, drop its shm files, spawn, wait ready.

        Raises:
            ServerStartError: it did not become ready (the process is stopped again; call ``restart`` later).
        """
        logger.info("restarting tritonserver (previous pid %s)", self.proc.pid if self.proc else None)
        self._terminate(timeout=5)
        self.upstream_http_port = free_port("127.0.0.1")  # the old one may have been taken meanwhile
        self.guard.retarget(self.upstream_http_port)
        try:
            self._spawn()
        except BaseException:
            self._terminate(timeout=5)
            raise

    def note(self, message: str) -> None:
        """Append a line from embsdk to the server log (restarts, exits); also logged (INFO)."""
        logger.info("%s", message)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(f"[emb serve {time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")

    def _get(self, path: str) -> int:
        url = f"http://127.0.0.1:{self.upstream_http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        pending = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in self.model_names())]
        while pending:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {self.proc.returncode} while starting.\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"tritonserver was not ready within {self.ready_timeout:.0f} s "
                    f"(waiting for {pending[0]}).\n{self.log_tail()}"
                )
            if self._get(pending[0]) == 200:
                pending.pop(0)
            else:
                time.sleep(0.1)

    def load(self, model: str, *, timeout: float = 120.0) -> None:
        """(Re)load ``model`` from the repository, e.g. after ``emb publish`` added a version; waits until ready.

        Raises:
            ServerStartError: the server refused or the model did not become ready in time.
        """
        self._repository_call(model, "load", timeout=timeout)
        logger.info("loading model %r", model)
        deadline = time.monotonic() + timeout
        while self._get(f"/v2/models/{model}/ready") != 200:
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"model {model!r} was not ready {timeout:.0f} s after loading.\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def unload(self, model: str, *, timeout: float = 60.0) -> None:
        """Unload ``model`` (its folder left the repository: every version retired or removed).

        Raises:
            ServerStartError: the server refused or did not answer.
        """
        self._repository_call(model, "unload", timeout=timeout)
        logger.info("unloaded model %r", model)

    def _repository_call(self, model: str, action: str, *, timeout: float) -> None:
        """POST tritonserver's model-repository API (``load``/``unload``) with the admin key.

        Raises:
            ServerStartError: the server refused or did not answer.
        """
        url = f"http://127.0.0.1:{self.upstream_http_port}/v2/repository/models/{model}/{action}"
        request = urllib.request.Request(
            url, data=b"{}", method="POST", headers={ADMIN_HEADER: self.admin_key}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except urllib.error.HTTPError as exc:
            raise ServerStartError(
                f"tritonserver refused to {action} {model!r}: {exc.read().decode(errors='replace')}"
            ) from None
        except OSError as exc:
            raise ServerStartError(f"tritonserver did not answer the {action} of {model!r}: {exc}") from None

    def repository_state(self) -> dict[str, float]:
        """``{model: mtime of its config.pbtxt}``: what changes when a version is added or removed."""
        if not self.repository.is_dir():
            return {}
        out: dict[str, float] = {}
        for cfg in self.repository.glob("*/config.pbtxt"):
            try:
                out[cfg.parent.name] = cfg.stat().st_mtime_ns
            except OSError:
                continue
        return out

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the guard and the server (:meth:`_terminate`); remove a generated key file.

        Returns:
            The server's exit code (None when it was never started).
        """
        self.guard.stop()
        if self.key_generated:
            self.key_file.unlink(missing_ok=True)
        code = self._terminate(timeout)
        if code is not None:
            logger.info("tritonserver stopped (exit code %s)", code)
        return code

    def _terminate(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole group; remove this server's shm files."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._kill_group(proc.pid)  # the leader is reaped: anything left in its group is a stray stub
        self.remove_shm()
        return proc.returncode

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """SIGKILL anything left in the server's process group (stubs), and wait until it is gone."""
        for _ in range(20):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):  # the group is gone (or no longer ours)
                return
            time.sleep(0.05)

    def shm_files(self) -> list[Path]:
        """This server's Python-backend shared-memory files that exist now."""
        return sorted(SHM_DIR.glob(f"{self.shm_prefix}*")) if SHM_DIR.is_dir() else []

    def remove_shm(self) -> list[Path]:
        removed = []
        for path in self.shm_files():
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
