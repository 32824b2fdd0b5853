"""``emb registry promote | deprecate | retire``: move a generation through its lifecycle."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._output import JsonOpt, emit
from cli.registry._common import ForceOpt, ReasonOpt, _open, app

__all__: list[str] = []


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    to: Annotated[str, typer.Option("--to", help="staging or production (or back to candidate).")],
    reason: ReasonOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Move a generation forward: candidate → staging → production.

    Example: emb registry promote unified-v2 --to production --reason "beats v1 on r@1"
    """
    ev = _open().promote(name, to, reason=reason)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")


@app.command("deprecate")
def deprecate(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Mark a production generation deprecated (refused while consumers still read it, unless --force).

    Example: emb registry deprecate unified-v1 --reason "replaced by unified-v2"
    """
    ev = _open().deprecate(name, reason=reason, force=force)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")


@app.command("retire")
def retire(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Retire a generation for good (refused while consumers or aliases point at it, unless --force).

    Example: emb registry retire unified-v1 --reason "no readers since March"
    """
    ev = _open().retire(name, reason=reason, force=force)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")
