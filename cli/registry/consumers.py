"""``emb registry consumers add | remove | list | tokens | revoke-token``: downstream teams, what they read, their API tokens."""

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
    scope: Annotated[
        str,
        typer.Option(
            "--scope", help="The token's scope: read, publish or admin (each includes the previous)."
        ),
    ] = "read",
    expires_days: Annotated[
        float | None,
        typer.Option("--expires-days", help="The token expires after this many days (default: never)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Record that a team reads a generation or alias, and issue the team's API token for `emb server`.

    The token is printed once (JSON field "token"); the registry keeps only a salted hash of it. Deprecating
    the generation is then refused unless forced. Revoke a token with: emb registry consumers revoke-token ID

    Example: emb registry consumers add visual-search-team production --scope read --json
    """
    reg = _open()
    c = reg.add_consumer(team, ref)
    issued = reg.issue_token(team, scope, expires_days=expires_days)
    t = issued.info
    data = {
        **c.to_dict(),
        "token": issued.token,
        "token_id": t.id,
        "scope": t.scope,
        "expires_at": t.expires_at,
    }
    expires = f", expires {_when(t.expires_at)}" if t.expires_at else ""
    emit(
        data,
        as_json=json_,
        human=(
            f"{team} reads {ref} (now {c.generation})\n"
            f"token {t.id} (scope {t.scope}{expires}); shown only now, keep it secret:\n{issued.token}"
        ),
    )


@consumers_app.command("revoke-token")
def consumers_revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id (see: emb registry consumers tokens).")],
    json_: JsonOpt = False,
) -> None:
    """Revoke an API token: `emb server` refuses it within its token cache TTL (10 s by default).

    Example: emb registry consumers revoke-token 3f2a9c01b7de
    """
    t = _open().revoke_token(token_id)
    emit(t, as_json=json_, human=f"revoked token {t.id} of {t.team} (scope {t.scope})")


@consumers_app.command("tokens")
def consumers_tokens(
    team: Annotated[str | None, typer.Argument(help="Only this team's tokens.")] = None,
    json_: JsonOpt = False,
) -> None:
    """API tokens (id, team, scope, dates; never the secret).

    Example: emb registry consumers tokens visual-search-team --json
    """
    ts = _open(create=False).tokens(team)
    emit(
        ts,
        as_json=json_,
        human=lambda xs: (
            _table(
                None,
                ["id", "team", "scope", "created", "expires", "revoked"],
                [
                    [t.id, t.team, t.scope, _when(t.created_at), _when(t.expires_at), _when(t.revoked_at)]
                    for t in xs
                ],
            )
            if xs
            else "no tokens"
        ),
    )


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
    """Consumers, what they resolve to now, and their requests through `emb server` (and last use).

    Example: emb registry consumers list production --json
    """
    reg = _open(create=False)
    cs = reg.consumers(ref)
    used = {(u.team, u.generation): u for u in reg.usage()}
    rows = []
    for c in cs:
        u = used.get((c.team, c.generation or ""))
        rows.append(
            {**c.to_dict(), "requests": u.requests if u else 0, "last_used_at": u.last_used_at if u else None}
        )
    emit(
        rows,
        as_json=json_,
        human=lambda xs: (
            _table(
                None,
                ["team", "reads", "now", "since", "by", "requests", "last use"],
                [
                    [
                        c["team"],
                        c["ref"],
                        c["generation"],
                        c["created_at"][:19].replace("T", " "),
                        c["created_by"],
                        str(c["requests"]),
                        _when(used[(c["team"], c["generation"])].last_used_at) if c["requests"] else "",
                    ]
                    for c in xs
                ],
            )
            if xs
            else "no consumers"
        ),
    )
