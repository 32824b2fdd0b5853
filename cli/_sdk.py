"""Shared options for the store/get/search commands: which generation, and an explicit client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["NoRegistryOpt", "StoreOpt", "VersionOpt", "make_client"]

VersionOpt = Annotated[
    str, typer.Option("--version", help="Generation name or alias (resolved through the registry).")
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Embedding store folder (default: EMB_STORE, else $EMB_HOME/store)."),
]
NoRegistryOpt = Annotated[
    bool,
    typer.Option("--no-registry", help="Read the store standalone: --version must be a generation name."),
]


def make_client(
    store: Path | None, no_registry: bool, *, url: str | None = None, protocol: str = "http"
) -> Any:
    """A Client for one CLI call (the registry URL comes from EMB_REGISTRY_URL / EMB_HOME)."""
    from embsdk.client import Client

    return Client(
        store=store, use_registry=not no_registry, resolve_ttl=0, embed_url=url, embed_protocol=protocol
    )
