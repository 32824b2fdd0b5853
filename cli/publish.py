"""``emb publish``: export + parity check + register + place in the Triton repository, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["register"]


def _human(d: dict[str, Any]) -> str:
    p = d["parity"]
    lines = [
        f"published {d['generation']} → Triton model {d['family']!r} version {d['triton_version']} ({d['repository']})",
        f"  parity: float max |diff| {p['max_abs_diff']:.2e}, bits agree {p['bit_agreement']:.4%} on {p['n_images']} images",
        "  artifacts: "
        + ", ".join(f"{n} sha256:{s[:12]}…" for n, s in d["artifacts"].items() if not n.startswith("eval/")),
    ]
    report_files = [n for n in d["artifacts"] if n.startswith("eval/")]
    if report_files:
        lines.append(f"  eval report: {len(report_files)} files attached ({', '.join(report_files)})")
    if d["parents"]:
        lines.append("  parents: " + ", ".join(f"{x['name']} ({x['kind']})" for x in d["parents"]))
    lines.append(
        f"  metrics: {len(d['metrics'])} from {d['eval_report']}"
        if d["eval_report"]
        else "  metrics: none (no emb eval report of this run: emb eval RUN --manifest M --report RUN/eval)"
    )
    if d["aliases"]:
        lines.append("  aliases: " + ", ".join(d["aliases"]))
    lines.append(
        f"Serve it with: emb serve   then: emb embed IMAGE --version {d['generation']} --url 127.0.0.1:8001 --protocol grpc"
    )
    return "\n".join(lines)


def publish_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `emb train`.")],
    name: Annotated[
        str, typer.Option("--name", "-n", help="New generation name, e.g. unified-v1 (must not exist).")
    ],
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent", help="Parent generation NAME[:KIND] (repeatable), e.g. unified-v0:fine-tuned-from."
        ),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option("--alias", help="Alias to point at it once served (repeatable), e.g. staging."),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option("--family", help="Family / Triton model name (default: the name without -vN)."),
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Parity images (repeatable). Default: images of the run's manifest."),
    ] = None,
    eval_report: Annotated[
        Path | None,
        typer.Option(
            "--eval-report",
            help="emb eval report folder of this run (default: RUN/eval, else the newest report whose "
            "metrics.json names this run: under RUN/, next to it, or under the current directory).",
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text for the registry.")] = "",
    repository: Annotated[
        Path | None,
        typer.Option(
            "--repository",
            help="Triton repository (default: EMB_TRITON_REPOSITORY or $EMB_HOME/triton_models).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a run as a new generation: export, parity check, register, serve.

    Exports ONNX and checks parity against PyTorch (a failing check is refused with the reason), stores the
    artifacts by sha256, registers the generation with its lineage, training dataset and the metrics of the
    run's emb eval report (whose summary.md and plots become artifacts eval/<file>, role eval-report), and
    places it as a new version in the Triton repository. A publish that fails or is killed leaves no
    registered generation without its model files and no half-written model version.

    Example: emb publish runs/unified --name unified-v2 --parent unified-v1:fine-tuned-from --alias staging

    Example: emb publish runs/unified --name unified-v3 --eval-report reports/unified
    """
    from publishing.publish import publish

    info(f"publishing {run} as {name} …")
    result = publish(
        run,
        name,
        parents=parent or (),
        aliases=alias or (),
        family=family,
        images=images,
        eval_report=eval_report,
        description=description,
        repository=repository,
    )
    emit(result.to_dict(), as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_command)
