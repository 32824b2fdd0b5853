"""Shared options of the commands that use a generation (embed, get, search, store): ``--version/-v``, which
defaults to the ``production`` alias, and an explicit client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_VERSION = "production"
"""= ``embsdk.client.DEFAULT_VERSION`` (a test keeps them equal; not imported so ``emb --help`` stays light)."""

__all__ = ["DEFAULT_VERSION", "NoRegistryOpt", "StoreOpt", "VersionOpt", "make_client", "resolved_label"]

VERSION_HELP = (
    "Generation name or alias, resolved through the registry (default: the production alias; "
    "set it with: emb registry alias set production NAME)."
)
VersionOpt = Annotated[str, typer.Option("--version", "-v", help=VERSION_HELP, show_default=True)]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Embedding store folder (default: EMB_STORE, else $EMB_HOME/store)."),
]
NoRegistryOpt = Annotated[
    bool,
    typer.Option("--no-registry", help="Read the store standalone: --version must be a generation name."),
]


def resolved_label(requested: str, generation: str) -> str:
    """How a command names the generation it used: ``production → unified-v2`` when an alias (or any
    other reference) resolved to it, else just the name."""
    return generation if str(requested) == generation else f"{requested} → {generation}"


def make_client(
    store: Path | None, no_registry: bool, *, url: str | None = None, protocol: str = "http"
) -> Any:
    """A Client for one CLI call (the registry URL comes from EMB_REGISTRY_URL / EMB_HOME)."""
    from embsdk.client import Client

    return Client(
        store=store, use_registry=not no_registry, resolve_ttl=0, embed_url=url, embed_protocol=protocol
    )
