"""``emb registry list | show | lineage | events | compare``: read-only views of the registry."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli.registry._common import _open, _table, _when, app

__all__: list[str] = []


@app.command("list")
def list_cmd(
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status (candidate, staging, …).")
    ] = None,
    family: Annotated[str | None, typer.Option("--family", help="Only this family.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List generations, oldest first, with their aliases.

    Example: emb registry list --status production --json
    """
    reg = _open(create=False)

    def human(gs: list[Any]) -> str:
        if not gs:
            return "no generations yet (register one: emb registry register NAME --artifact FILE)"
        aliases: dict[str, list[str]] = {}  # only the table shows them: --json skips this query
        for a, g in reg.aliases().items():
            aliases.setdefault(g, []).append(a)
        return _table(
            None,
            ["name", "family", "status", "aliases", "created", "by", "description"],
            [
                [
                    g.name,
                    g.family,
                    g.status,
                    ", ".join(aliases.get(g.name, [])),
                    _when(g.created_at),
                    g.created_by,
                    g.description,
                ]
                for g in gs
            ],
        )

    emit(reg.list(status, family=family), as_json=json_, human=human)


def _show_text(g: Any) -> str:
    head = [
        ["name", g.name + (f"  (via alias {g.resolved_from})" if g.resolved_from else "")],
        ["family", g.family],
        ["status", g.status],
        ["aliases", ", ".join(g.aliases)],
        ["created", f"{_when(g.created_at)} by {g.created_by}"],
        ["code version", g.code_version],
        ["description", g.description],
        ["embedding spec", json.dumps(g.embedding_spec)],
        ["input spec", json.dumps(g.input_spec)],
        ["parents", ", ".join(f"{e.parent} ({e.kind})" for e in g.parents)],
        ["children", ", ".join(f"{e.child} ({e.kind})" for e in g.children)],
        [
            "datasets",
            ", ".join(f"{d.name} [{d.role}] sha256:{d.sha256[:12]} rows={d.rows}" for d in g.datasets),
        ],
    ]
    out = _table(f"generation {g.name}", ["field", "value"], head)
    if g.artifacts:
        out += _table(
            "artifacts",
            ["name", "role", "sha256", "size", "fixed", "current", "added"],
            [
                [
                    a.name,
                    a.role,
                    a.sha256,
                    a.size,
                    "yes" if a.at_creation else "",
                    "yes" if a.current else "superseded",
                    _when(a.created_at),
                ]
                for a in g.artifacts
            ],
        )
    if g.metrics:
        out += _table("metrics", ["key", "value"], [[k, f"{v:.4f}"] for k, v in g.metrics.items()])
    return out


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Generation name or alias.")],
    json_: JsonOpt = False,
) -> None:
    """Everything about one generation: status, spec, parents, artifacts with sha256, aliases, metrics.

    Example: emb registry show production --json
    """
    emit(_open(create=False).resolve(ref), as_json=json_, human=_show_text)


@app.command("lineage")
def lineage(
    name: Annotated[str, typer.Argument(help="Generation name or alias.")],
    json_: JsonOpt = False,
) -> None:
    """Ancestors and descendants of a generation, with typed edges.

    Example: emb registry lineage unified-v2
    """
    graph = _open(create=False).lineage(name)
    emit(
        graph,
        as_json=json_,
        human=lambda g: (
            f"{g.root}\n  ancestors:   {', '.join(g.ancestors) or '-'}\n  descendants: {', '.join(g.descendants) or '-'}\n"
            + (
                _table("edges", ["child", "kind", "parent"], [[e.child, e.kind, e.parent] for e in g.edges])
                if g.edges
                else ""
            )
        ),
    )


@app.command("events")
def events(name: Annotated[str, typer.Argument(help="Generation name.")], json_: JsonOpt = False) -> None:
    """Every lifecycle transition of a generation (who, when, why).

    Example: emb registry events unified-v2 --json
    """
    evs = _open(create=False).events(name)
    emit(
        evs,
        as_json=json_,
        human=lambda es: _table(
            None,
            ["when", "from", "to", "who", "reason"],
            [[_when(e.at), e.from_status or "-", e.to_status, e.who, e.reason] for e in es],
        ),
    )


@app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(help="Generation name or alias.")],
    b: Annotated[str, typer.Argument(help="Generation name or alias.")],
    json_: JsonOpt = False,
) -> None:
    """Metrics side by side (delta = B - A) and the spec fields that differ.

    Example: emb registry compare unified-v1 production
    """
    cmp = _open(create=False).compare(a, b)

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    def human(c: Any) -> str:
        out = _table(
            f"{c.a} vs {c.b}",
            ["metric", c.a, c.b, "delta"],
            [[k, fmt(x), fmt(y), "-" if d is None else f"{d:+.4f}"] for k, x, y, d in c.metrics],
        )
        diffs = {
            **{f"embedding.{k}": v for k, v in c.spec_differences.items()},
            **{f"input.{k}": v for k, v in c.input_differences.items()},
        }
        if diffs:
            out += _table("spec differences", ["field", c.a, c.b], [[k, x, y] for k, (x, y) in diffs.items()])
        return out

    emit(cmp, as_json=json_, human=human)
