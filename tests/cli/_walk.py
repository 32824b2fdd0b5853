"""Walk the ``emb`` Typer app: every leaf command with its path and its Click parameters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def leaf_commands() -> Iterator[tuple[str, Any]]:
    """``("emb registry alias set", click_command)`` for every command that has no subcommands."""
    from typer.main import get_command

    from cli.main import app

    def walk(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, cmd

    yield from walk(get_command(app), "emb")


def options(cmd: Any) -> list[Any]:
    """The options (not arguments) of a Click command."""
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]
