"""``emb registry fsck | migrate``: check the artifact store, upgrade the schema."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli.registry._common import _open, app

__all__: list[str] = []


@app.command("fsck")
def fsck(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Quarantine corrupt blobs; delete old orphans/temp files and work folders of killed publishes.",
        ),
    ] = False,
    grace: Annotated[
        float, typer.Option("--grace-seconds", help="Keep orphans younger than this (in-flight writes).")
    ] = 900,
    json_: JsonOpt = False,
) -> None:
    """Check the artifact store: missing, corrupt (hash mismatch) and orphaned blobs, half-written files,
    and $EMB_HOME/tmp/publish-* work folders left by killed publishes.

    Exits 1 when a referenced blob is missing or corrupt.

    Example: emb registry fsck --repair --grace-seconds 3600
    """
    report = _open(create=False).fsck(repair=repair, grace_seconds=grace, progress=not json_)

    def human(r: Any) -> str:
        lines = [f"checked {r.blobs_checked} blob(s), {r.referenced} referenced"]
        for label, items in (
            ("MISSING", r.missing),
            ("CORRUPT", r.corrupt),
            ("orphan", r.orphans),
            ("temp file", r.temp_files),
            ("stale publish folder", r.stale_workdirs),
            ("removed", r.removed),
            ("quarantined", r.quarantined),
            ("kept (recent)", r.kept_recent_orphans),
        ):
            lines += [f"  {label}: {x}" for x in items]
        lines.append("ok" if r.ok else "PROBLEMS FOUND: referenced artifacts are missing or corrupt")
        return "\n".join(lines)

    emit(report, as_json=json_, human=human)
    if not report.ok:
        raise typer.Exit(1)


@app.command("migrate")
def migrate(json_: JsonOpt = False) -> None:
    """Upgrade the registry schema to this embsdk's newest revision (safe to run repeatedly).

    Example: EMB_REGISTRY_URL=postgresql+psycopg://user@host/db emb registry migrate
    """
    reg = _open(auto_migrate=False)
    before, after = reg.migrate()
    emit(
        {"url": reg.url_redacted, "from": before, "to": after},
        as_json=json_,
        human=f"{reg.url_redacted}: {before or 'empty'} → {after}"
        if before != after
        else f"{reg.url_redacted}: at {after}",
    )
