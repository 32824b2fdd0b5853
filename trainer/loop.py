"""The training loop: ``train(config)`` starts a run, ``resume(run_dir)`` continues one exactly.

Resume restores model, heads, optimizer, scheduler, AMP scaler, the sampler position (epoch and batch)
and the torch RNG state, so an interrupted-then-resumed run ends with the same weights as an
uninterrupted one. A run killed mid-epoch loses at most the steps since its last checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from embsdk.errors import RunError

from . import _setup as S
from .checkpoint import load_checkpoint, prune_checkpoints, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import DistContext, init_distributed, shutdown_distributed
from .model import embedding_spec
from .run import CONFIG_YAML, METRICS, RUN_JSON, code_version, write_json_atomic

__all__ = ["resume", "train"]


def train(config: TrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train a new run into ``config.out`` and return a summary dict.

    Raises:
        ConfigError: invalid options.  ManifestError: bad manifest (strict) or no usable rows.
        RunError: ``config.out`` already holds a run (use :func:`resume`).
    """
    config.check()
    out = Path(config.out).expanduser().resolve()
    if (out / RUN_JSON).exists():
        raise RunError(
            f"{out} already holds a run; continue it with: emb train --resume {out} (or pick another --out)"
        )
    config.out, config.manifest = str(out), str(Path(config.manifest).expanduser().resolve())
    return _run(config, resume_from=None, progress=progress)


def resume(
    run_dir: str | Path, *, progress: bool = True, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Continue the run in *run_dir* from ``checkpoints/last.pt`` (``overrides``: e.g. ``num_workers``, ``max_steps``).

    Raises:
        RunError: not a run folder, or its manifest changed since the run started.
        CheckpointError: no usable checkpoint.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / CONFIG_YAML).is_file():
        raise RunError(f"{run_dir} is not a training run folder (no {CONFIG_YAML})")
    config = TrainConfig.from_dict(yaml.safe_load((run_dir / CONFIG_YAML).read_text()))
    allowed = {"num_workers", "max_steps", "checkpoint_every", "device"}
    config = config.merged({k: v for k, v in (overrides or {}).items() if k in allowed})
    config.max_steps = (overrides or {}).get("max_steps")
    config.out = str(run_dir)  # the folder may have moved since config.yaml was written
    return _run(config, resume_from=run_dir / "checkpoints" / "last.pt", progress=progress)


class _Logger:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path, self.enabled = run_dir / METRICS, enabled

    def log(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def _run(config: TrainConfig, *, resume_from: Path | None, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    dist = init_distributed(config.device)
    threads = torch.get_num_threads()
    try:
        run_dir = Path(config.out)
        S.seed_everything(config.seed)
        data = S.prepare_data(config)
        model = S.build_model(config)
        loss = S.build_loss(config, data)
        dataset = S.build_dataset(
            config, data, model, progress=progress and dist.is_main, device=str(dist.device)
        )
        module = S.TrainModule(model, loss, features=config.uses_feature_cache).to(dist.device)
        optimizer = S.build_optimizer(config, module)
        sampler = S.build_sampler(config, data, dist.rank, dist.world_size)
        steps_per_epoch = math.ceil(sampler.batches_per_epoch / config.grad_accum)
        scheduler = S.build_scheduler(config, optimizer, config.epochs * steps_per_epoch)
        amp_dtype = _amp_dtype(config, dist)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        step, epoch, batch_pos = 0, 0, 0
        if resume_from is not None:
            state = load_checkpoint(resume_from)
            run_meta = json.loads((run_dir / RUN_JSON).read_text())
            if run_meta["manifest"]["sha256"] != data.manifest.sha256:
                raise RunError(
                    f"the manifest {data.manifest.path} changed since this run started "
                    f"(sha256 {run_meta['manifest']['sha256'][:12]} → {data.manifest.sha256[:12]}); start a new run"
                )
            module.load_state_dict(state["module"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            step, epoch, batch_pos = int(state["step"]), int(state["epoch"]), int(state["batch"])
            set_rng_state(state["rng"])
        elif dist.is_main:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / CONFIG_YAML).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        meta = {
            "backbone": config.backbone,
            "manifest": {"path": str(data.manifest.path), "sha256": data.manifest.sha256},
            "code_version": code_version(),
            "tasks": data.tasks,
            "classes": data.classes,
            "embedding_spec": embedding_spec(config.embedding_dim),
            "input_spec": model.input_spec.to_dict(),
            "config": config.to_dict(),
            "world_size": dist.world_size,
            "validation": data.report.to_dict(),
            "status": "running",
            "step": step,
        }
        log = _Logger(run_dir, dist.is_main)
        if dist.is_main:
            write_json_atomic(run_dir / RUN_JSON, meta)
            log.log(
                {
                    "event": "resume" if resume_from else "start",
                    "step": step,
                    "epoch": epoch,
                    "batch": batch_pos,
                    "validation": data.report.summary(),
                }
            )
            if data.report.bad:
                tqdm.write(f"[emb train] {data.report.summary()}", file=sys.stderr)
        ddp = torch.nn.parallel.DistributedDataParallel(module) if dist.enabled else module

        def checkpoint(ep: int, pos: int, *, periodic: bool) -> None:
            if not dist.is_main:
                return
            state = {
                "module": module.state_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": ep,
                "batch": pos,
                "rng": rng_state(),
                "config": config.to_dict(),
            }
            ckpt_dir = run_dir / "checkpoints"
            save_checkpoint(state, ckpt_dir / "last.pt")
            if periodic:
                save_checkpoint(state, ckpt_dir / f"step-{step:08d}.pt")
                prune_checkpoints(ckpt_dir, config.keep_checkpoints)

        if config.uses_feature_cache:
            torch.set_num_threads(1)  # tiny matmuls: one thread beats spinning thread pools on a busy CPU
        t_start, seen, stopped = time.perf_counter(), 0, False
        last_losses: dict[str, float] = {}
        workers = 0 if config.uses_feature_cache else config.num_workers  # cached features: nothing to decode
        while epoch < config.epochs and not stopped:
            sampler.set_epoch(epoch, batch_pos)
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=workers,
                generator=torch.Generator().manual_seed(config.seed),
                persistent_workers=False,
            )
            module.train()
            sums: dict[str, float] = {}
            t_epoch, ep_seen = time.perf_counter(), 0
            bar = tqdm(
                total=sampler.batches_per_epoch,
                initial=batch_pos,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                unit="batch",
                disable=not (progress and dist.is_main),
                dynamic_ncols=True,
            )
            for count, batch in enumerate(loader, start=1):
                x = batch["image"].to(dist.device, non_blocking=True)
                rows = batch["index"]
                labels = {t: data.labels[t][rows].to(dist.device) for t in data.tasks}
                batch_pos += 1
                boundary = batch_pos % config.grad_accum == 0 or batch_pos == sampler.batches_per_epoch
                sync = nullcontext() if (boundary or not dist.enabled) else ddp.no_sync()
                with (
                    sync,
                    torch.autocast(
                        dist.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                    ),
                ):
                    total, per_task = ddp(x, labels)
                scaler.scale(total / config.grad_accum).backward()
                for t, v in per_task.items():
                    sums[t] = sums.get(t, 0.0) + float(v)
                seen += len(x) * dist.world_size
                ep_seen += len(x) * dist.world_size
                if boundary:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    step += 1
                    last_losses = {t: round(s / count, 5) for t, s in sums.items()}
                    ips = ep_seen / max(1e-9, time.perf_counter() - t_epoch)
                    log.log(
                        {
                            "step": step,
                            "epoch": epoch,
                            "batch": batch_pos,
                            "loss": round(float(total.detach()), 5),
                            **{f"loss.{t}": round(float(v), 5) for t, v in per_task.items()},
                            "lr": scheduler.get_last_lr()[0],
                            "images_per_s": round(ips, 1),
                        }
                    )
                    bar.set_postfix(
                        {**{t: f"{v:.3f}" for t, v in last_losses.items()}, "img/s": f"{ips:.0f}"}
                    )
                    done_epoch = batch_pos == sampler.batches_per_epoch
                    if config.checkpoint_every and step % config.checkpoint_every == 0 and not done_epoch:
                        checkpoint(epoch, batch_pos, periodic=True)
                    if config.max_steps is not None and step >= config.max_steps and not done_epoch:
                        checkpoint(epoch, batch_pos, periodic=False)
                        stopped = True
                        break
                bar.update(1)
            bar.close()
            if not stopped:
                epoch, batch_pos = epoch + 1, 0
                checkpoint(epoch, 0, periodic=bool(config.checkpoint_every))
                log.log({"event": "epoch_end", "epoch": epoch, "step": step, "loss_avg": last_losses})
                if config.max_steps is not None and step >= config.max_steps and epoch < config.epochs:
                    stopped = True
        elapsed = time.perf_counter() - t_start
        status = "stopped" if stopped else "finished"
        summary = {
            "run_dir": str(run_dir),
            "status": status,
            "step": step,
            "epoch": epoch,
            "epochs": config.epochs,
            "tasks": data.tasks,
            "loss": last_losses,
            "images_seen": seen,
            "elapsed_s": round(elapsed, 2),
            "images_per_s": round(seen / max(elapsed, 1e-9), 1),
            "skipped_rows": len(data.report.bad),
            "train_rows": len(data.rows),
            "feature_cache": config.uses_feature_cache,
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "world_size": dist.world_size,
            "device": str(dist.device),
        }
        if dist.is_main:
            meta.update(status=status, step=step, summary=summary)
            write_json_atomic(run_dir / RUN_JSON, meta)
            log.log({"event": status, **summary})
        return {**summary, "rank": dist.rank}
    finally:
        torch.set_num_threads(threads)  # also after a failed run (the feature-cache path sets 1)
        shutdown_distributed()


def _amp_dtype(config: TrainConfig, dist: DistContext) -> torch.dtype | None:
    if not config.amp or dist.device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
