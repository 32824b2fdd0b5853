"""Shared pieces of ``emb registry``: the Typer apps, common options, the registry opener, table and parsers.

Every command opens the registry named by EMB_REGISTRY_URL (default: SQLite under EMB_HOME) and prints
tables for people or ``--json`` for programs. Library imports happen inside the commands so ``emb --help``
stays fast.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from registry import Registry

__all__ = [
    "ForceOpt",
    "ReasonOpt",
    "_open",
    "_parse_metrics",
    "_table",
    "_when",
    "alias_app",
    "app",
    "consumers_app",
]

app = typer.Typer(
    help=(
        "The registry of embedding generations: register, inspect, trace lineage, promote, alias, check.\n\n"
        "Examples:\n\n"
        "  emb registry register unified-v1 --artifact model.onnx --spec-bits 256 --metric coarse/test/r@1/binary=0.61\n\n"
        "  emb registry register unified-v2 --artifact model.onnx --parent unified-v1:fine-tuned-from\n\n"
        "  emb registry promote unified-v2 --to staging\n\n"
        "  emb registry alias set production unified-v2 --protect\n\n"
        "  emb registry show production --json"
    ),
    no_args_is_help=True,
)
alias_app = typer.Typer(
    help="Movable names (production, staging, …) with a history of every move.", no_args_is_help=True
)
consumers_app = typer.Typer(
    help="Downstream teams and the generation or alias they read.", no_args_is_help=True
)
app.add_typer(alias_app, name="alias")
app.add_typer(consumers_app, name="consumers")

ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept forever in the event history).")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Override a refusal (consumers, protection); needs --reason.")
]


def _open(**kwargs: Any) -> Registry:
    from registry import Registry

    return Registry(**kwargs)


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    buf = io.StringIO()
    Console(file=buf, width=140, no_color=True, highlight=False).print(table)
    return buf.getvalue()


def _parse_metrics(items: list[str]) -> dict[str, float]:
    """``KEY=VALUE`` strings → ``{key: float}`` (typed error on a malformed item)."""
    from embsdk.errors import InvalidRegistryInput

    metrics = {}
    for m in items:
        key, sep, value = m.rpartition("=")
        if not sep or not key:
            raise InvalidRegistryInput(f"--metric takes KEY=VALUE, got {m!r}")
        try:
            metrics[key] = float(value)
        except ValueError:
            raise InvalidRegistryInput(f"--metric {key}: {value!r} is not a number") from None
    return metrics


# NAME[:KIND] parent specs: a copy of this parser is in publishing/publish.py; one home for both is planned
# (registry.validation.parse_parent_spec). Keep the name: callers switch in one place.
def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt is not None else ""
