"""``emb train``: train the unified multi-task embedding (or resume a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._output import JsonOpt, emit

__all__ = ["register"]


def _emit(summary: dict, as_json: bool) -> None:
    if summary.pop("rank", 0) == 0:  # under torchrun only rank 0 prints
        emit(summary, as_json=as_json, human=_human)


def _human(s: dict) -> str:
    losses = ", ".join(f"{t} {v:.3f}" for t, v in s["loss"].items())
    return (
        f"{s['status']}: {s['run_dir']}  step {s['step']}, epoch {s['epoch']}/{s['epochs']}, "
        f"{s['images_per_s']} img/s, {s['elapsed_s']} s\nlast loss: {losses}"
        + (f"\nskipped {s['skipped_rows']} bad manifest rows" if s["skipped_rows"] else "")
    )


def train(
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", help="Training manifest (.csv/.parquet); its train split is used."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Run folder to create (config.yaml, run.json, checkpoints/, metrics.jsonl)."
        ),
    ] = None,
    resume_run: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the run in this folder exactly where it stopped."),
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML file of options (flags override it).")
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            help="efficientnet-lite0 (default), efficientnet-lite2, resnet50, resnext50_32x4d, tiny-cnn.",
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Local backbone state_dict to start from (e.g. for resnet50)."),
    ] = None,
    embedding_dim: Annotated[
        int | None,
        typer.Option("--embedding-dim", help="Embedding size = code length in bits (multiple of 8)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the training rows.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Batch size per process (tasks mixed uniformly in each batch)."),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Input size (default: the backbone's native size).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr", help="Learning rate of embedding layer and heads (backbone: × backbone_lr_mult)."
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Comma-separated tasks to train on (default: all task.* columns)."),
    ] = None,
    freeze_backbone: Annotated[
        bool | None,
        typer.Option(
            "--freeze-backbone/--train-backbone",
            help="Freeze the whole backbone (then train on cached features).",
        ),
    ] = None,
    trainable_blocks: Annotated[
        int | None, typer.Option("--trainable-blocks", help="Train only the last K backbone blocks.")
    ] = None,
    cache_views: Annotated[
        int | None,
        typer.Option(
            "--cache-views",
            help="With a frozen backbone: cached views per image (1 = eval view only; more adds augmented views).",
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Normalized-softmax temperature (default 0.05).")
    ] = None,
    binary_loss_weight: Annotated[
        float | None,
        typer.Option(
            "--binary-loss-weight",
            help="Binarization-aware loss: also score sign(embedding) (straight-through) with this weight (0: off).",
        ),
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="uniform (tasks mixed uniformly) or class-balanced.")
    ] = None,
    sample_negatives: Annotated[
        int | None,
        typer.Option(
            "--sample-negatives", help="Class subsampling: score positives + this many sampled negatives."
        ),
    ] = None,
    grad_accum: Annotated[
        int | None, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp", help="Mixed precision on CUDA (bf16, or fp16 + GradScaler); ignored on CPU."
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-every", help="Also checkpoint every N optimizer steps (0: end of epoch only)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="DataLoader worker processes (decode + augment).")
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Stop (checkpointed, resumable) after this many optimizer steps."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of init, sampling and augmentation.")
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict", help="Fail on the first bad manifest row (default: skip and count)."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: cuda if available).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Train the unified embedding on every task of a manifest and write a run folder.

    Example: emb train --manifest data/grocery.csv --out runs/unified --freeze-backbone --epochs 20
    Multi-GPU: torchrun --nproc-per-node 2 -m cli.main train ...
    """
    from embsdk.errors import ConfigError
    from trainer.config import TrainConfig, load_config_file
    from trainer.loop import resume
    from trainer.loop import train as run_train

    if resume_run is not None:
        fixed = {
            "--manifest": manifest,
            "--out": out,
            "--config": config_file,
            "--backbone": backbone,
            "--weights": weights,
            "--embedding-dim": embedding_dim,
            "--epochs": epochs,
            "--batch-size": batch_size,
            "--image-size": image_size,
            "--lr": lr,
            "--tasks": tasks,
            "--freeze-backbone": freeze_backbone,
            "--trainable-blocks": trainable_blocks,
            "--cache-views": cache_views,
            "--temperature": temperature,
            "--binary-loss-weight": binary_loss_weight,
            "--sampler": sampler,
            "--sample-negatives": sample_negatives,
            "--grad-accum": grad_accum,
            "--amp": amp,
            "--seed": seed,
            "--strict": strict,
        }
        given = [flag for flag, value in fixed.items() if value is not None]
        if given:  # a resumed run continues with its recorded config; silently ignoring these would mislead
            raise ConfigError(
                f"--resume continues {resume_run} with its recorded config, so {', '.join(given)} cannot be given; "
                "only --workers, --max-steps, --checkpoint-every and --device may change. Start a new run instead."
            )
        overrides = {
            "num_workers": workers,
            "max_steps": max_steps,
            "checkpoint_every": checkpoint_every,
            "device": device,
        }
        summary = resume(resume_run, progress=not (quiet or json_), overrides=overrides)
        _emit(summary, json_)
        return
    base = TrainConfig().merged(load_config_file(config_file)) if config_file else TrainConfig()
    config = base.merged(
        {
            "manifest": str(manifest) if manifest else None,
            "out": str(out) if out else None,
            "backbone": backbone,
            "weights_path": str(weights) if weights else None,
            "embedding_dim": embedding_dim,
            "epochs": epochs,
            "batch_size": batch_size,
            "image_size": image_size,
            "lr": lr,
            "tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            "freeze_backbone": freeze_backbone,
            "trainable_blocks": trainable_blocks,
            "cache_views": cache_views,
            "temperature": temperature,
            "binary_loss_weight": binary_loss_weight,
            "sampler": sampler,
            "sample_negatives": sample_negatives,
            "grad_accum": grad_accum,
            "amp": amp,
            "checkpoint_every": checkpoint_every,
            "num_workers": workers,
            "max_steps": max_steps,
            "seed": seed,
            "strict": strict,
            "device": device,
        }
    )
    if not config.manifest or not config.out:
        raise ConfigError("emb train needs --manifest and --out (or --resume RUN)")
    _emit(run_train(config, progress=not (quiet or json_)), json_)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
