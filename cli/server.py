"""``emb server``: the HTTP service (FastAPI on uvicorn) in front of the registry and the store."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from cli._output import info

__all__ = ["is_loopback", "register"]


def is_loopback(host: str) -> bool:
    """Whether *host* only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def server_command(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", help="uvicorn worker processes (HTTP workers, not dataloader workers).", min=1
        ),
    ] = 1,
) -> None:
    """Serve the registry and the embedding store over HTTP (API under /v1, schema at /openapi.json).

    Every request but /healthz needs "Authorization: Bearer <token>"; a team's token comes from
    "emb registry consumers add TEAM NAME|ALIAS --json". On an address other than loopback the server
    refuses to start while the registry holds no active token. Stop it with Ctrl-C.

    Example: emb server --host 127.0.0.1 --port 8080 --workers 2
    """
    try:
        import uvicorn
    except ImportError:
        from embsdk.errors import MissingExtraError

        raise MissingExtraError("uvicorn", "service") from None
    from embsdk.errors import ConfigError
    from registry import Registry

    with Registry(create=False) as reg:  # a missing registry fails here, with its path
        has_tokens = reg.has_active_tokens()
        where = reg.url_redacted
    if not has_tokens:
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to serve on {host}: the registry has no active API token, so nobody could be "
                "authenticated; issue one first: emb registry consumers add TEAM NAME|ALIAS --json"
            )
        info(
            "warning: the registry has no active API token; every request but /healthz will be refused (401)"
        )
    info(f"emb server: http://{host}:{port} (registry {where}, {workers} worker(s))")
    uvicorn.run(
        "service.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


def register(app: typer.Typer) -> None:
    app.command("server")(server_command)
