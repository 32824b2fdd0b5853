"""``emb registry register | attach | add-metrics | add-parent``: create a generation and add to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli.registry._common import _open, _parse_metrics, _table, app

__all__: list[str] = []


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
    from registry.validation import parse_parent_spec

    parents = [parse_parent_spec(p) for p in parent or []]
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
    from registry.validation import parse_parent_spec

    edge = _open().add_parent(child, *parse_parent_spec(parent))
    emit(edge, as_json=json_, human=f"{edge.child} --{edge.kind}--> {edge.parent}")
