"""``emb registry …``: the generation registry from the command line, one module per concern.

* :mod:`cli.registry.generations`: register, attach, add-metrics, add-parent
* :mod:`cli.registry.read`: list, show, lineage, events, compare
* :mod:`cli.registry.lifecycle`: promote, deprecate, retire
* :mod:`cli.registry.aliases`: alias set | history | list
* :mod:`cli.registry.consumers`: consumers add | remove | list
* :mod:`cli.registry.maintenance`: fsck, migrate

Shared apps, options and helpers are in :mod:`cli.registry._common`.
"""

from __future__ import annotations

import importlib

import typer

from cli.registry._common import app

# Order = the order of `emb registry --help`.
for _module in ("generations", "read", "lifecycle", "aliases", "consumers", "maintenance"):
    importlib.import_module(f"cli.registry.{_module}")

__all__ = ["app", "register"]


def register(root: typer.Typer) -> None:
    """Mount ``emb registry`` on the root app."""
    root.add_typer(app, name="registry")
