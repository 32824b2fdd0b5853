"""``emb registry alias set | history | list``: movable names with a history of every move."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._output import JsonOpt, emit
from cli.registry._common import ForceOpt, ReasonOpt, _open, _table, _when, alias_app

__all__: list[str] = []


@alias_app.command("set")
def alias_set(
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    name: Annotated[str, typer.Argument(help="Generation it should point at.")],
    protect: Annotated[bool, typer.Option("--protect", help="Later moves need --force --reason.")] = False,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Point an alias at a generation (every move is kept in its history).

    Example: emb registry alias set production unified-v2 --force --reason "v2 wins on r@1"
    """
    ev = _open().set_alias(alias, name, protect=protect, force=force, reason=reason)
    emit(
        ev,
        as_json=json_,
        human=f"{alias} → {ev.generation}" + (f" (was {ev.previous})" if ev.previous else ""),
    )


@alias_app.command("history")
def alias_history(alias: Annotated[str, typer.Argument(help="Alias name.")], json_: JsonOpt = False) -> None:
    """Every move of an alias, oldest first.

    Example: emb registry alias history production --json
    """
    evs = _open(create=False).alias_history(alias)
    emit(
        evs,
        as_json=json_,
        human=lambda es: _table(
            f"alias {alias}",
            ["when", "from", "to", "who", "reason"],
            [[_when(e.at), e.previous or "-", e.generation, e.who, e.reason] for e in es],
        ),
    )


@alias_app.command("list")
def alias_list(json_: JsonOpt = False) -> None:
    """Every alias and where it points now.

    Example: emb registry alias list
    """
    aliases = _open(create=False).aliases()
    emit(
        aliases,
        as_json=json_,
        human=lambda d: (
            _table(None, ["alias", "generation"], [[a, g] for a, g in d.items()]) if d else "no aliases"
        ),
    )
