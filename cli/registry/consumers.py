"""``emb registry consumers add | remove | list``: downstream teams and what they read."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._output import JsonOpt, emit, info
from cli.registry._common import _open, _table, _when, consumers_app

__all__: list[str] = []


@consumers_app.command("add")
def consumers_add(
    team: Annotated[str, typer.Argument(help="Team name.")],
    ref: Annotated[str, typer.Argument(help="Generation name or alias the team reads.")],
    json_: JsonOpt = False,
) -> None:
    """Record that a team reads a generation or alias (deprecating it is then refused unless forced).

    Example: emb registry consumers add visual-search-team production
    """
    c = _open().add_consumer(team, ref)
    emit(c, as_json=json_, human=f"{team} reads {ref} (now {c.generation})")


@consumers_app.command("remove")
def consumers_remove(
    team: Annotated[str, typer.Argument(help="Team name.")],
    ref: Annotated[str, typer.Argument(help="Generation name or alias.")],
) -> None:
    """Forget that a team reads a generation or alias.

    Example: emb registry consumers remove visual-search-team production
    """
    _open().remove_consumer(team, ref)
    info(f"removed consumer {team} of {ref}")


@consumers_app.command("list")
def consumers_list(
    ref: Annotated[str | None, typer.Argument(help="Only consumers of this generation or alias.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Consumers and what they resolve to now.

    Example: emb registry consumers list production --json
    """
    cs = _open(create=False).consumers(ref)
    emit(
        cs,
        as_json=json_,
        human=lambda xs: (
            _table(
                None,
                ["team", "reads", "now", "since", "by"],
                [[c.team, c.ref, c.generation, _when(c.created_at), c.created_by] for c in xs],
            )
            if xs
            else "no consumers"
        ),
    )
