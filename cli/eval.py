"""``emb eval``: retrieval metrics of a run (or the ImageNet baseline) per task, float vs binary, as a report folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["register"]


def _human(data: dict[str, Any]) -> str:
    from trainer.evaluate.report import METRIC_COLUMNS

    lines = [
        f"{data['model']} on {data['split']} ({data['dim']} bits; {data['images']} images, {data['skipped_images']} skipped)"
    ]
    lines.append(f"{'task':<10} {'code':<7} " + " ".join(f"{c:>7}" for c in METRIC_COLUMNS))
    for task, res in data["tasks"].items():
        for kind in ("float", "binary"):
            lines.append(f"{task:<10} {kind:<7} " + " ".join(f"{res[kind][c]:>7.3f}" for c in METRIC_COLUMNS))
        lines.append(f"{'':<10} binary/float R@1 = {res['binary_float_r1_ratio']:.3f}")
    return "\n".join(lines)


def eval_command(
    model: Annotated[
        str,
        typer.Argument(
            help="A run folder written by `emb train`, or imagenet:<backbone> for the ImageNet baseline "
            "(pretrained pooled features, no training, LayerNorm + sign), e.g. imagenet:efficientnet-lite0."
        ),
    ],
    manifest: Annotated[
        Path,
        typer.Option(
            "--manifest", "-m", help="Manifest (CSV/Parquet) with split, domain and task.<name> columns."
        ),
    ],
    report: Annotated[
        Path, typer.Option("--report", "-r", help="Report folder to write (metrics.json, summary.md, PNGs).")
    ],
    split: Annotated[
        str,
        typer.Option(
            "--split", help="Held-out split whose photos are the queries (gallery: train photos or catalog)."
        ),
    ] = "test",
    task: Annotated[
        list[str] | None,
        typer.Option("--task", "-t", help="Evaluate only this task (repeatable). Default: every task."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Images per forward pass.")
    ] = 32,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=0, help="DataLoader workers decoding images (default: min(2, CPUs))."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto (ONNX Runtime when installed), onnxruntime, or torch (the whole model in PyTorch, no "
            "feature cache). Backbone features are reused from the frozen-backbone feature cache when present.",
        ),
    ] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate retrieval per task: held-out photos query the train photos (coarse, fine) or the catalog
    images (photo → catalog); R@1/5/10, P@20, mAP@R for the float embedding (cosine) and the binary code
    (Hamming). Embeddings are cached in the report folder, so a rerun only re-scores.

    Example: emb eval runs/unified --manifest data/grocery.csv --report reports/unified
    """
    from trainer.evaluate import evaluate

    data = evaluate(
        model,
        manifest,
        report,
        split=split,
        tasks=task or None,
        batch_size=batch_size,
        workers=workers,
        progress=not as_json,
        engine=engine,
    )
    if data["skipped_images"]:
        info(f"skipped {data['skipped_images']} unreadable image(s); first: {data['skipped'][0]}")
    info(f"report written to {report}/ (summary.md, metrics.json, recall_at_k.png, grids/)")
    emit(data, as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    """Add ``emb eval`` to the root app."""
    app.command("eval", no_args_is_help=True)(eval_command)
