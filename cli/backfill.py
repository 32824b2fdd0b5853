"""``emb backfill``: fill a generation's embedding store from a manifest (resumable, exactly once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["register"]


def _human(report: dict) -> str:
    lines = [
        f"generation      {report['generation']}",
        f"engine          {report['engine']}",
        f"items           {report['total']} in manifest, {report['already_present']} already present",
        (
            f"embedded        {report['embedded']} in {report['seconds']:.1f}s ({report['images_per_second']:.1f} img/s), "
            f"{report['commits']} commit(s)"
        ),
        f"failed          {report['failed_count']} unreadable image(s)"
        + (" (listed in the report)" if report["failed_count"] else ""),
        f"report          {report['report_path']}",
    ]
    return "\n".join(lines)


def backfill(
    version: Annotated[str, typer.Option("--version", "-v", help="Generation name or alias to embed with.")],
    manifest: Annotated[
        Path, typer.Option("--manifest", "-m", help="CSV/Parquet manifest with id and image columns.")
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per model call.")] = 32,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip ids already in the store (after a kill or crash).")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local (threads + ONNX Runtime/Triton) or ray (Ray Data).")
    ] = "local",
    url: Annotated[
        str | None,
        typer.Option("--url", help="Embed through this Triton server (host:port) instead of in-process."),
    ] = None,
    protocol: Annotated[str, typer.Option("--protocol", help="http or grpc, with --url.")] = "http",
    commit_every: Annotated[int, typer.Option("--commit-every", help="Rows per atomic store commit.")] = 1024,
    vectors: Annotated[
        bool, typer.Option("--vectors/--no-vectors", help="Also store float16 embeddings for re-ranking.")
    ] = True,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray cluster address (default: start a local instance)."),
    ] = None,
    ray_actors: Annotated[
        int, typer.Option("--ray-actors", min=1, help="With --engine ray: Ray actors embedding in parallel.")
    ] = 2,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Report folder to write backfill.json into (default: $EMB_HOME/reports/backfill-<generation>-<time>.json).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Embed every image of MANIFEST with generation VERSION and write its store.

    Kill it at any point and rerun with --resume: every id ends up in the store exactly once. Unreadable
    images are skipped, counted and listed in the report, never fatal.

    The store records MANIFEST (path and sha256), so emb search can print each hit's label and image path.

    Examples:
      emb backfill --version unified-v1 --manifest data/grocery.csv --report reports/backfill-v1
      emb backfill -v production -m m.parquet --engine ray --ray-actors 4 --resume
    """
    from embsdk.backfill import backfill as run_backfill
    from embsdk.errors import ConfigError

    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine must be local or ray, not {engine!r}.")
    if protocol not in ("http", "grpc"):
        raise ConfigError(f"--protocol must be http or grpc, not {protocol!r}.")
    result = run_backfill(
        version,
        manifest,
        batch_size=batch_size,
        resume=resume,
        engine=engine,  # type: ignore[arg-type]
        url=url,
        protocol=protocol,
        commit_every=commit_every,
        keep_vectors=vectors,  # type: ignore[arg-type]
        ray_address=ray_address,
        workers=ray_actors,
        report_path=report / "backfill.json" if report is not None else None,
        progress=not json_,
    )
    data = result.to_dict()
    if result.failed and not json_:
        info(
            f"{len(result.failed)} image(s) could not be read, e.g. {result.failed[0].path}: {result.failed[0].reason}"
        )
    emit(data, as_json=json_, human=_human)


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)
