"""Start, watch and stop a real tritonserver on a model repository (the CPU Python backend).

The server runs in its own process group and gets SIGTERM if this process dies (``PR_SET_PDEATHSIG``),
so no orphan server or stub outlives us. (The signal follows the *thread* that started it: start servers
from a thread that lives as long as they should.) Its Python-backend shared-memory regions get a unique prefix,
so a server that had to be killed can have exactly its own ``/dev/shm`` files removed.

Bound to loopback, nothing is restricted. Bound to any other address, Triton's model-repository API
(load/unload/index) needs the header ``admin-key: <secret>`` on HTTP and gRPC, with the secret taken from
``EMB_TRITON_ADMIN_KEY``; without it the server is not started. tritonserver takes the secret on its command
line only, so local users who can list processes can read it; it is never logged or printed by embsdk.

Example:
    >>> with TritonServer(repository, http_port=0, grpc_port=0) as server:   # doctest: +SKIP
    ...     print(server.endpoints.grpc_url)
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from embsdk.config import get_settings
from embsdk.errors import ConfigError, ServerStartError
from embsdk.serving._tritonbin import TritonInstall, find_tritonserver
from embsdk.serving.engines import check_repository_engines

__all__ = ["LOOPBACK", "SHM_DIR", "SHM_PREFIX", "Endpoints", "TritonServer", "free_port"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
ADMIN_HEADER = "admin-key"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Endpoints:
    """Where a started server listens (``*_url`` in the ``host:port`` form tritonclient takes)."""

    host: str
    http_port: int
    grpc_port: int

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in {"0.0.0.0", "localhost"} else self.host

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"


def _pdeathsig() -> object | None:
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
        log_path: server log file; default ``$EMB_HOME/logs/tritonserver-<http port>.log``.
        admin_key: secret for the restricted model-repository API.
    """

    def __init__(self, repository: str | Path | None = None, *, host: str = "127.0.0.1", http_port: int = 8000,
                 grpc_port: int = 8001, models: list[str] | None = None, ready_timeout: float = 120.0,
                 log_path: str | Path | None = None, admin_key: str | None = None) -> None:
        settings = get_settings()
        self.repository = Path(repository or settings.triton_repository).expanduser().resolve()
        self.host = host
        self.admin_key = admin_key or settings.triton_admin_key
        self.restricted = host not in LOOPBACK
        if self.restricted and not self.admin_key:
            raise ConfigError(
                f"Refusing to bind {host}: off loopback the model-repository API must be protected. "
                "Set EMB_TRITON_ADMIN_KEY to a secret (clients send it as the 'admin-key' header), or bind 127.0.0.1."
            )
        probe = "127.0.0.1" if host in {"0.0.0.0", "localhost"} else host
        self.endpoints = Endpoints(host, http_port or free_port(probe), grpc_port or free_port(probe))
        self.models = models
        self.ready_timeout = ready_timeout
        self.log_path = Path(log_path) if log_path else settings.home / "logs" / f"tritonserver-{self.endpoints.http_port}.log"
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
        """The tritonserver command line (contains the admin key when restricted: don't log it)."""
        install = install or find_tritonserver()
        ep = self.endpoints
        cmd = [
            str(install.binary), f"--model-repository={self.repository}", f"--backend-directory={install.backend_dir}",
            f"--http-address={self.host}", f"--http-port={ep.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={ep.grpc_port}",
            "--allow-metrics=false", "--model-control-mode=explicit", "--exit-timeout-secs=10",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        cmd += [f"--load-model={m}" for m in self.model_names()]
        if self.restricted:
            cmd += [f"--http-restricted-api=model-repository:{ADMIN_HEADER}={self.admin_key}",
                    f"--grpc-restricted-protocol=model-repository:{ADMIN_HEADER}={self.admin_key}"]
        return cmd

    def start(self) -> Endpoints:
        """Start the server and wait until it and every model are ready.

        Raises:
            ServerStartError: it exited, or was not ready within ``ready_timeout`` (the log tail is in the message).
            EngineIncompatible: a TensorRT plan in the repository was built for another GPU/TensorRT/CUDA.
            MissingExtraError: tritonserver is not installed.
        """
        if not self.repository.is_dir():
            raise ServerStartError(f"Model repository {self.repository} does not exist; publish a generation first (emb publish).")
        check_repository_engines(self.repository, self.model_names())  # refuse mismatched TensorRT plans up front
        install = find_tritonserver()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(install), env=install.environment(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_pdeathsig())  # noqa: PLW1509
        try:
            self._wait_ready()
        except BaseException:
            self.stop(timeout=5)
            raise
        return self.endpoints

    def _get(self, path: str) -> int:
        url = f"http://{self.endpoints.http_url}{path}"
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
                raise ServerStartError(f"tritonserver exited with code {self.proc.returncode} while starting.\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerStartError(f"tritonserver was not ready within {self.ready_timeout:.0f} s "
                                       f"(waiting for {pending[0]}).\n{self.log_tail()}")
            if self._get(pending[0]) == 200:
                pending.pop(0)
            else:
                time.sleep(0.1)

    def load(self, model: str, *, timeout: float = 120.0) -> None:
        """(Re)load ``model`` from the repository, e.g. after ``emb publish`` added a version; waits until ready.

        Raises:
            ServerStartError: the server refused or the model did not become ready in time.
        """
        url = f"http://{self.endpoints.http_url}/v2/repository/models/{model}/load"
        headers = {ADMIN_HEADER: self.admin_key} if self.restricted and self.admin_key else {}
        request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except urllib.error.HTTPError as exc:
            raise ServerStartError(f"tritonserver refused to load {model!r}: {exc.read().decode(errors='replace')}") from None
        except OSError as exc:
            raise ServerStartError(f"tritonserver did not answer the load of {model!r}: {exc}") from None
        deadline = time.monotonic() + timeout
        while self._get(f"/v2/models/{model}/ready") != 200:
            if time.monotonic() > deadline:
                raise ServerStartError(f"model {model!r} was not ready {timeout:.0f} s after loading.\n{self.log_tail()}")
            time.sleep(0.1)

    def repository_state(self) -> dict[str, float]:
        """``{model: mtime of its config.pbtxt}``: what changes when a version is added or removed."""
        if not self.repository.is_dir():
            return {}
        out = {}
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
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole group; remove this server's shm files.

        Returns:
            The server's exit code (None when it was never started).
        """
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
