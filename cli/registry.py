"""``emb registry …``: the generation registry from the command line.

Every command opens the registry named by EMB_REGISTRY_URL (default: SQLite under EMB_HOME) and prints
tables for people or ``--json`` for programs. Library imports happen inside the commands so ``emb --help``
stays fast.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli._output import JsonOpt, emit, info

if TYPE_CHECKING:
    from registry import Registry

__all__ = ["app", "register"]

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


def register(root: typer.Typer) -> None:
    """Mount ``emb registry`` on the root app."""
    root.add_typer(app, name="registry")


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


def _parse_parent(item: str) -> tuple[str, str]:
    """``NAME[:KIND]`` → ``(name, kind)``; KIND defaults to ``fine-tuned-from``."""
    name, _, kind = item.partition(":")
    return name, kind or "fine-tuned-from"


def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt is not None else ""


# ---------------------------------------------------------------------------------------------- register


@app.command("register")
def register_cmd(
    name: Annotated[
        str, typer.Argument(help="New generation name, e.g. unified-v2 (immutable once registered).")
    ],
    artifact: Annotated[
        list[Path] | None, typer.Option("--artifact", help="File to store with it (repeatable).")
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent",
            help="NAME[:KIND]; KIND is fine-tuned-from (default), distilled-from, replaces, compatible-with.",
        ),
    ] = None,
    dataset: Annotated[
        list[Path] | None, typer.Option("--dataset", help="Training manifest (hashed, rows counted).")
    ] = None,
    family: Annotated[str | None, typer.Option("--family", help="Family; default: NAME without -vN.")] = None,
    spec_bits: Annotated[
        int | None, typer.Option("--spec-bits", help="Code length in bits (LayerNorm-sign spec).")
    ] = None,
    spec_dim: Annotated[
        int | None, typer.Option("--spec-dim", help="Float embedding dimension (default = bits).")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="KEY=VALUE, KEY like task/dataset/metric/variant.")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    training_config: Annotated[
        Path | None, typer.Option("--training-config", help="JSON or YAML file with the training config.")
    ] = None,
    code_version: Annotated[
        str | None, typer.Option("--code-version", help="Default: git commit of the cwd.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Register a new generation (status candidate): store its files, record lineage, datasets and metrics.

    Example: emb registry register unified-v2 --artifact model.onnx --parent unified-v1 --spec-bits 256
    """
    from embsdk.errors import InvalidRegistryInput

    parents = [_parse_parent(p) for p in parent or []]
    metrics = _parse_metrics(metric or [])
    config = None
    if training_config is not None:
        import yaml

        if not training_config.is_file():
            raise InvalidRegistryInput(f"--training-config {str(training_config)!r} does not exist")
        try:
            config = yaml.safe_load(training_config.read_text())
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidRegistryInput(
                f"--training-config {str(training_config)!r} is not valid JSON or YAML ({problem}); fix the file."
            ) from None
    spec = _spec_from_options(spec_bits, spec_dim)
    gen = _open().register(
        name,
        family=family,
        artifacts=list(artifact or []),
        parents=parents,
        datasets=list(dataset or []),
        embedding_spec=spec,
        training_config=config,
        code_version=code_version,
        description=description,
        metrics=metrics,
    )
    emit(
        gen,
        as_json=json_,
        human=lambda g: f"registered {g.name} ({g.status}, {len(g.artifacts)} artifact(s))",
    )


def _spec_from_options(bits: int | None, dim: int | None) -> dict[str, Any] | None:
    """``--spec-bits``/``--spec-dim`` → the LayerNorm-sign embedding spec (None when neither is given).

    Raises:
        InvalidRegistryInput: bits is not a positive multiple of 8, dim is not positive, or dim lacks bits.
    """
    from embsdk.errors import InvalidRegistryInput
    from registry.validation import check_code_bits, check_positive_int, default_embedding_spec

    if bits is None:
        if dim is not None:
            raise InvalidRegistryInput(
                "--spec-dim needs --spec-bits (the code length), e.g. --spec-bits 256."
            )
        return None
    check_code_bits(bits, "--spec-bits")
    if dim is not None:
        check_positive_int(dim, "--spec-dim")
    return default_embedding_spec(bits, dim=dim)


# ---------------------------------------------------------------------------------------------- read


@app.command("list")
def list_cmd(
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status (candidate, staging, …).")
    ] = None,
    family: Annotated[str | None, typer.Option("--family", help="Only this family.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List generations, oldest first."""
    reg = _open()

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
    """Everything about one generation: status, spec, parents, artifacts with sha256, aliases, metrics."""
    emit(_open().resolve(ref), as_json=json_, human=_show_text)


@app.command("lineage")
def lineage(
    name: Annotated[str, typer.Argument(help="Generation name or alias.")],
    json_: JsonOpt = False,
) -> None:
    """Ancestors and descendants of a generation, with typed edges."""
    graph = _open().lineage(name)
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
    """Every lifecycle transition of a generation (who, when, why)."""
    evs = _open().events(name)
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
    """Metrics side by side (delta = B - A) and the spec fields that differ."""
    cmp = _open().compare(a, b)

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


@app.command("attach")
def attach(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    path: Annotated[Path, typer.Argument(help="File to attach (store shard, index, eval report, plan…).")],
    artifact_name: Annotated[
        str | None, typer.Option("--name", help="Artifact name (default: file name).")
    ] = None,
    role: Annotated[
        str, typer.Option("--role", help="store-shard, index, eval-report, plan, attachment…")
    ] = "attachment",
    json_: JsonOpt = False,
) -> None:
    """Attach a file to an existing generation (append-only; a newer file with the same name supersedes it).

    Example: emb registry attach unified-v2 eval.json --role eval-report
    """
    art = _open().add_artifact(name, path, artifact_name=artifact_name, role=role)
    emit(art, as_json=json_, human=f"attached {art.name} ({art.role}) sha256:{art.sha256} to {name}")


@app.command("add-metrics")
def add_metrics(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    metric: Annotated[
        list[str], typer.Argument(help="KEY=VALUE pairs, KEY like task/dataset/metric/variant.")
    ],
    json_: JsonOpt = False,
) -> None:
    """Record (or re-measure) evaluation metrics of a generation; allowed at any time.

    Example: emb registry add-metrics unified-v2 coarse/grocery-test/r@1/binary=0.64
    """
    gen = _open().add_metrics(name, _parse_metrics(metric))
    emit(
        gen.metrics,
        as_json=json_,
        human=lambda m: _table(name, ["key", "value"], [[k, f"{v:.4f}"] for k, v in m.items()]),
    )


@app.command("add-parent")
def add_parent(
    child: Annotated[str, typer.Argument(help="Generation that was derived.")],
    parent: Annotated[str, typer.Argument(help="PARENT[:KIND]; KIND defaults to fine-tuned-from.")],
    json_: JsonOpt = False,
) -> None:
    """Add a lineage edge after registration, e.g. a later 'replaces' (cycles are refused).

    Example: emb registry add-parent unified-v3 unified-v2:replaces
    """
    edge = _open().add_parent(child, *_parse_parent(parent))
    emit(edge, as_json=json_, human=f"{edge.child} --{edge.kind}--> {edge.parent}")


# ---------------------------------------------------------------------------------------------- lifecycle


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    to: Annotated[str, typer.Option("--to", help="staging or production (or back to candidate).")],
    reason: ReasonOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Move a generation forward: candidate → staging → production."""
    ev = _open().promote(name, to, reason=reason)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")


@app.command("deprecate")
def deprecate(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Mark a production generation deprecated (refused while consumers still read it, unless --force)."""
    ev = _open().deprecate(name, reason=reason, force=force)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")


@app.command("retire")
def retire(
    name: Annotated[str, typer.Argument(help="Generation name.")],
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Retire a generation for good (refused while consumers or aliases point at it, unless --force)."""
    ev = _open().retire(name, reason=reason, force=force)
    emit(ev, as_json=json_, human=f"{name}: {ev.from_status} → {ev.to_status}")


# ---------------------------------------------------------------------------------------------- aliases


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
    """Every move of an alias, oldest first."""
    evs = _open().alias_history(alias)
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
    """Every alias and where it points now."""
    aliases = _open().aliases()
    emit(
        aliases,
        as_json=json_,
        human=lambda d: (
            _table(None, ["alias", "generation"], [[a, g] for a, g in d.items()]) if d else "no aliases"
        ),
    )


# ---------------------------------------------------------------------------------------------- consumers


@consumers_app.command("add")
def consumers_add(
    team: Annotated[str, typer.Argument(help="Team name.")],
    ref: Annotated[str, typer.Argument(help="Generation name or alias the team reads.")],
    json_: JsonOpt = False,
) -> None:
    """Record that a team reads a generation or alias (deprecating it is then refused unless forced)."""
    c = _open().add_consumer(team, ref)
    emit(c, as_json=json_, human=f"{team} reads {ref} (now {c.generation})")


@consumers_app.command("remove")
def consumers_remove(
    team: Annotated[str, typer.Argument(help="Team name.")],
    ref: Annotated[str, typer.Argument(help="Generation name or alias.")],
) -> None:
    """Forget that a team reads a generation or alias."""
    _open().remove_consumer(team, ref)
    info(f"removed consumer {team} of {ref}")


@consumers_app.command("list")
def consumers_list(
    ref: Annotated[str | None, typer.Argument(help="Only consumers of this generation or alias.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Consumers and what they resolve to now."""
    cs = _open().consumers(ref)
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


# ---------------------------------------------------------------------------------------------- maintenance


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
    """
    report = _open().fsck(repair=repair, grace_seconds=grace, progress=not json_)

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
    """Upgrade the registry schema to this embsdk's newest revision (safe to run repeatedly)."""
    reg = _open(auto_migrate=False)
    before, after = reg.migrate()
    emit(
        {"url": reg.url_redacted, "from": before, "to": after},
        as_json=json_,
        human=f"{reg.url_redacted}: {before or 'empty'} → {after}"
        if before != after
        else f"{reg.url_redacted}: at {after}",
    )
