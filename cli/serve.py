"""``emb serve``: run the real tritonserver on the model repository; ``--check`` asks a running one what it serves."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["Backoff", "RetiredWatch", "exit_reason", "register", "supervise"]


def _check_human(data: dict[str, Any]) -> str:
    state = "ready" if data["ready"] else "live, still loading a model"
    lines = [
        f"Triton at {data['url']} ({data['protocol']}): {state}, {len(data['generations'])} generation(s) loaded"
    ]
    for r in data["generations"]:
        state = (
            f"ok {r['latency_ms']} ms, {r['code_bytes']}-byte codes" if r["ok"] else f"FAILED: {r['error']}"
        )
        lines.append(f"  {r['generation']:<24} {r['family']} v{r['version']:<4} {state}")
    return "\n".join(lines)


def _prepare(repository: Path, *, sync: bool) -> None:
    """Finish or drop what a killed publish left in the repository; with ``sync``, rebuild it from the registry."""
    from triton_models.repository import ModelRepository
    from triton_models.sync import registered_in_registry, sync_from_registry

    if sync:
        done = sync_from_registry(repository)
        for gen, number in done["added"]:
            info(f"repository: added {gen} as version {number} (from the registry)")
        for gen in done["removed"]:
            info(f"repository: removed {gen} (retired)")
        for gen, why in done["skipped"]:
            info(f"repository: skipped {gen}: {why}")
        return
    checker = registered_in_registry()
    if checker is not None and repository.is_dir():
        done = ModelRepository(repository).reconcile(checker)
        for gen in done["committed"]:
            info(f"repository: committed {gen}, left staged by an interrupted publish")


@dataclass
class Backoff:
    """Exponential restart delays: ``first``, doubled up to ``cap``; back to ``first`` after ``reset_after`` s up."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0
    delay: float = 0.0

    def next(self, uptime: float) -> float:
        self.delay = (
            self.first if uptime >= self.reset_after or not self.delay else min(self.cap, self.delay * 2)
        )
        return self.delay


def exit_reason(returncode: int | None) -> str:
    """``signal SIGKILL`` or ``exit code 1``."""
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def _report(server: Any, message: str) -> None:
    """A supervisor event: stderr and the server log."""
    info(message)
    server.note(message)


def _wait(seconds: float, stop: dict[str, Any]) -> None:
    deadline = time.monotonic() + seconds
    while stop["signal"] is None and time.monotonic() < deadline:
        time.sleep(0.1)


def _reload_changed(server: Any, seen: dict[str, float]) -> dict[str, float]:
    """Load every model whose config changed since ``seen`` (emb publish added a version, a retired one left),
    unload those whose config is gone (every version retired); the new state."""
    from embsdk.errors import ServerStartError

    now = server.repository_state()
    for model in sorted(m for m, mtime in now.items() if seen.get(m) != mtime):
        try:
            server.load(model)
            info(f"reloaded {model!r}: the repository changed")
        except ServerStartError as exc:
            info(f"could not reload {model!r}: {exc}")
    for model in sorted(set(seen) - set(now)):
        try:
            server.unload(model)
            info(f"unloaded {model!r}: it left the repository")
        except ServerStartError as exc:
            info(f"could not unload {model!r}: {exc}")
    return now


class RetiredWatch:
    """Polls the registry for retired generations; removes the ones the repository still serves.

    The registry is opened once, read-only (a missing SQLite registry is not created: nothing to watch then),
    and asked one query per poll. A registry that cannot be read is retried at the next poll, reported once.
    """

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self._registry: Any = None
        self._failed: str | None = None

    def poll(self) -> list[str]:
        """Remove served generations the registry has retired since; the names removed."""
        from triton_models.sync import remove_retired, retired_in_registry

        try:
            if self._registry is None:
                from registry import Registry

                self._registry = Registry(create=False, auto_migrate=False)
            retired = retired_in_registry(self._registry)
        except Exception as exc:  # noqa: BLE001 - missing, unreachable, not installed: nothing to compare now
            self.close()
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if why != self._failed and "RegistryNotFound" not in why:
                info(f"watch: cannot read the registry for retired generations ({why}); retrying")
            self._failed = why
            return []
        self._failed = None
        try:
            return remove_retired(self.repository, retired) if retired else []
        except OSError as exc:
            info(f"watch: could not remove retired generations from {self.repository}: {exc}")
            return []

    def close(self) -> None:
        if self._registry is not None:
            try:
                self._registry.close()
            finally:
                self._registry = None


def _restart(server: Any, stop: dict[str, Any], backoff: Backoff, count: int, uptime: float) -> bool:
    """Restart a dead tritonserver after a backoff delay; True when it is ready again."""
    from embsdk.errors import ServerStartError

    delay = backoff.next(uptime)
    _report(
        server,
        f"tritonserver (pid {server.proc.pid}) died: {exit_reason(server.proc.returncode)} after {uptime:.0f} s up; "
        f"restart #{count} in {delay:g} s (unhealthy meanwhile: HTTP answers 503, gRPC is closed)",
    )
    _wait(delay, stop)
    if stop["signal"] is not None:
        return False
    stop["started"] = False  # a signal now abandons the restart
    try:
        server.restart()
    except ServerStartError as exc:
        _report(server, f"restart #{count} failed: {str(exc).splitlines()[0]}")
        return False
    except KeyboardInterrupt:  # SIGTERM/SIGINT while restarting: stop, as asked (the caller stops the server)
        return False
    finally:
        stop["started"] = True
    _report(server, f"tritonserver restarted (restart #{count}, pid {server.proc.pid}): ready")
    return True


def _drop_retired(server: Any, retired: RetiredWatch) -> None:
    """Take generations the registry retired out of the repository (the reload that follows unserves them)."""
    for name in retired.poll():
        _report(server, f"repository: removed {name}: retired in the registry; Triton stops serving it")


def supervise(server: Any, stop: dict[str, Any], *, watch: bool) -> None:
    """Keep tritonserver up until a signal: restart it with backoff when it dies; with ``watch``, unserve
    generations the registry retires and reload changed models (every 2 s)."""
    seen, next_poll = server.repository_state(), time.monotonic() + 2
    backoff, restarts, up_since = Backoff(), 0, time.monotonic()
    retired = RetiredWatch(server.repository)
    try:
        while stop["signal"] is None:
            time.sleep(0.2)
            if not server.running:
                restarts += 1
                if _restart(server, stop, backoff, restarts, time.monotonic() - up_since):
                    seen = server.repository_state()
                up_since = time.monotonic()  # a failed restart never came up: the next delay doubles
                continue
            if watch and time.monotonic() > next_poll:
                _drop_retired(server, retired)
                seen, next_poll = _reload_changed(server, seen), time.monotonic() + 2
    finally:
        retired.close()


def _where(bind: str, connect: str) -> str:
    return bind if bind == connect else f"{bind} (connect: {connect})"


def _ready_human(d: dict[str, Any]) -> str:
    lines = [
        (
            f"Triton ready: HTTP {_where(d['http_bind'], d['http'])}  "
            f"gRPC {_where(d['grpc_bind'], d['grpc'])}  models: {', '.join(d['models']) or 'none'}"
        ),
        f"Embed with: emb embed IMAGE --version NAME --url {d['grpc']} --protocol grpc   (Ctrl-C stops)",
    ]
    if d.get("metrics"):
        lines.append(f"Prometheus metrics: {d['metrics']}")
    if d["admin_key_file"]:
        lines.append(
            f"Admin key (for {', '.join(d['restricted_apis'])}): generated for this run in {d['admin_key_file']}"
        )
    return "\n".join(lines)


def serve_command(
    repository: Annotated[
        Path | None,
        typer.Option(
            "--repository",
            help="Model repository (default: EMB_TRITON_REPOSITORY, or $EMB_HOME/triton_models, which emb publish fills).",
        ),
    ] = None,
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP port (0: a free one).")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port (0: a free one).")] = 8001,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind. Off loopback the model-repository API also needs the admin key (EMB_TRITON_ADMIN_KEY, or one generated per start: see README, Security).",
        ),
    ] = "127.0.0.1",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Don't start a server: report what the server at --url serves, with one real inference per generation.",
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="With --check: server address host:port (default: 127.0.0.1 and --http-port/--grpc-port).",
        ),
    ] = None,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="With --check: http or grpc.")] = "http",
    ready_timeout: Annotated[
        float, typer.Option("--ready-timeout", help="Seconds to wait for the server to be ready.")
    ] = 120.0,
    sync: Annotated[
        bool,
        typer.Option(
            "--sync",
            help="First (re)build the repository from the registry: add every registered, non-retired generation that is missing, remove retired ones.",
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch/--no-watch",
            help="Reload a model when emb publish adds a version to the repository, and stop serving a "
            "generation the registry retires (polls every 2 s).",
        ),
    ] = True,
    max_request_mb: Annotated[
        float,
        typer.Option(
            "--max-request-mb",
            help="Largest HTTP request body and largest declared input, in MiB; bigger infer requests get 400/413 before tritonserver allocates.",
        ),
    ] = 64.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve tritonserver's Prometheus metrics (nv_inference_request_success, latencies, ...) at "
            "http://HOST:PORT/metrics (0: a free port). Default: metrics off.",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            help="Address the metrics port binds to: loopback unless you name another one (the endpoint has no "
            "access control; it does not follow --host).",
        ),
    ] = "127.0.0.1",
    as_json: JsonOpt = False,
) -> None:
    """Serve the model repository with the real tritonserver (or --check a running one).

    tritonserver comes from the nvidia-pytriton wheel (CPU Python backend running ONNX Runtime). It waits
    until every model is ready, prints the endpoints, runs until Ctrl-C or SIGTERM, then stops cleanly
    (no orphan server/stub processes, no leftover shared memory). A tritonserver that dies is restarted
    with backoff (1 s doubling to 30 s), each restart logged on stderr and in the server log.

    Examples: emb serve  ·  emb serve --http-port 0 --grpc-port 0 --json  ·  emb serve --metrics-port 8002  ·
    emb serve --check --url 127.0.0.1:8001 -p grpc
    """
    if check:
        from embsdk.serving.health import check_server

        target = url or f"127.0.0.1:{grpc_port if protocol == 'grpc' else http_port}"
        data = check_server(target, protocol=protocol)  # type: ignore[arg-type]
        emit(data, as_json=as_json, human=_check_human)
        if not all(r["ok"] for r in data["generations"]):
            raise typer.Exit(code=1)
        return
    from embsdk.config import get_settings
    from embsdk.errors import ServerStartError
    from embsdk.serving.server import TritonServer, restricted_apis

    repo = (repository or get_settings().triton_repository).expanduser().resolve()
    _prepare(repo, sync=sync)
    if not repo.is_dir():
        raise ServerStartError(
            f"Model repository {repo} does not exist; publish a generation first (emb publish RUN --name NAME)."
        )
    server = TritonServer(
        repo,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        ready_timeout=ready_timeout,
        max_request_bytes=int(max_request_mb * 2**20),
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    stop: dict[str, Any] = {"signal": None, "started": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum
        if not stop["started"]:
            raise KeyboardInterrupt  # still starting: abandon the start (finally stops the server)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        info(f"starting tritonserver on {repo} (log: {server.log_path})")
        ep = server.start()
        stop["started"] = True
        data = {
            "repository": str(repo),
            "host": host,
            "http": ep.http_url,  # where a client on this machine connects
            "grpc": ep.grpc_url,
            "http_bind": ep.http_bind,  # where the port is bound (0.0.0.0:PORT with --host 0.0.0.0)
            "grpc_bind": ep.grpc_bind,
            "models": server.model_names(),
            "pid": server.proc.pid if server.proc else None,
            "log": str(server.log_path),
            "restricted": server.restricted,
            "restricted_apis": list(restricted_apis(host)),
            "admin_key_file": str(server.key_file) if server.key_generated else None,
            "max_request_bytes": server.guard.max_bytes,
        }
        if server.metrics_url:
            data["metrics"] = server.metrics_url
        emit(data, as_json=as_json, human=_ready_human)
        supervise(server, stop, watch=watch)
    finally:
        code = server.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    info(f"tritonserver stopped (exit code {code})")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
