"""The experiment, end to end: manifest → cached features → baseline / specialized / unified → scores → report."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.backbones import create_backbone
from trainer.data.grocery import write_grocery_manifest
from trainer.data.manifest import Manifest
from trainer.evaluate.embed import EmbeddedRows
from trainer.evaluate.protocol import TaskProtocol, build_protocols
from trainer.evaluate.report import write_report
from trainer.evaluate.scoring import TaskResult, score_task

from .config import ExperimentConfig
from .features import augmented_features, eval_features
from .run_folder import save_run_folder, verify_run_folder
from .train_cached import train_embedding
from .writeup import write_writeup

__all__ = ["run_experiment"]


def _embedded(floats: np.ndarray) -> EmbeddedRows:
    n = len(floats)
    return EmbeddedRows(
        rows=np.arange(n), floats=floats.astype(np.float32), valid=np.ones(n, bool), errors={}
    )


def _scores(results: list[TaskResult]) -> dict[str, Any]:
    return {r.protocol.task: r.to_dict() for r in results}


def run_experiment(cfg: ExperimentConfig, *, log: Any = print) -> dict[str, Any]:
    """Run everything and write ``REPORT.md``, ``results.json`` and ``figures/`` into ``cfg.out_dir``.

    Returns:
        The content of ``results.json``.
    """
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    work, out = Path(cfg.work_dir), Path(cfg.out_dir)
    torch.manual_seed(0)

    t = time.perf_counter()
    manifest = Manifest.load(cfg.manifest or write_grocery_manifest(cfg.data_root, out_dir=work / "data"))
    protocols = {p.task: p for p in build_protocols(manifest, split=cfg.split, tasks=cfg.tasks)}
    backbone = create_backbone(cfg.backbone, pretrained=True)
    eval_f = eval_features(backbone, manifest, cache_dir=work / "cache", workers=cfg.workers)
    train_rows = np.array(manifest.indices("train"), dtype=np.int64)
    aug = augmented_features(
        backbone,
        manifest,
        train_rows,
        views=cfg.aug_views,
        cache_dir=work / "cache",
        batch_size=cfg.feature_batch_size,
        workers=cfg.workers,
    )
    train_feats = np.concatenate([eval_f[train_rows][None], aug], axis=0)
    timings["features"] = time.perf_counter() - t
    log(f"features: eval {eval_f.shape}, training views {train_feats.shape} in {timings['features']:.0f}s")

    header = {
        "manifest": str(manifest.path),
        "manifest_sha256": manifest.sha256,
        "split": cfg.split,
        "images": len(manifest),
        "skipped_images": 0,
    }
    reports = work / "reports"

    # (1) ImageNet baseline: pretrained pooled features, LayerNorm without affine, sign.
    t = time.perf_counter()
    eval_f = np.array(eval_f, dtype=np.float32)  # writable copy of the cached array
    base = torch.nn.functional.layer_norm(torch.from_numpy(eval_f), eval_f.shape[-1:]).numpy()
    base_results = [score_task(protocols[task], _embedded(base)) for task in cfg.tasks]
    write_report(
        reports / "baseline",
        base_results,
        {**header, "model": f"imagenet:{cfg.backbone}", "dim": base.shape[1]},
        image_path=manifest.image_path,
    )
    timings["baseline"] = time.perf_counter() - t
    log("baseline: " + _r1_line(base_results))

    # (2) specialized models, one per task, and (3) the unified model, for each seed.
    factor = cfg.unified_epoch_factor if cfg.unified_epoch_factor is not None else len(cfg.tasks)
    unified_cfg = dataclasses.replace(cfg, epochs=max(1, round(cfg.epochs * factor)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two contending ones (restored below)
    runs: dict[str, dict[int, dict[str, Any]]] = {
        "unified": {},
        **{f"specialized-{t}": {} for t in cfg.tasks},
    }
    train_seconds: dict[str, list[float]] = {}
    t = time.perf_counter()
    try:
        for seed in cfg.seeds:
            for name, tasks in [
                *((f"specialized-{task}", [task]) for task in cfg.tasks),
                ("unified", list(cfg.tasks)),
            ]:
                model = train_embedding(
                    name,
                    tasks,
                    train_feats,
                    train_rows,
                    manifest,
                    unified_cfg if name == "unified" else cfg,
                    seed=seed,
                )
                train_seconds.setdefault(name, []).append(model.seconds)
                results = [score_task(protocols[task], _embedded(model.embed(eval_f))) for task in cfg.tasks]
                runs[name][seed] = {
                    "tasks": _scores(results),
                    "steps": model.steps,
                    "train_seconds": model.seconds,
                    "loss_log": model.loss_log[-1:],
                }
                log(f"seed {seed} {name:<20} {model.steps} steps {model.seconds:5.1f}s  " + _r1_line(results))
                if seed == cfg.seeds[0]:
                    write_report(
                        reports / name,
                        results,
                        {**header, "model": name, "dim": cfg.embedding_dim},
                        image_path=manifest.image_path,
                    )
                    if name == "unified":
                        save_run_folder(work / "run-unified", model, backbone, manifest, cfg)
                        unified_floats = model.embed(eval_f)
    finally:
        torch.set_num_threads(threads)
    timings["train_and_score"] = time.perf_counter() - t

    verify = None
    if cfg.verify_rows:
        t = time.perf_counter()
        seed0 = runs["unified"][cfg.seeds[0]]
        verify = verify_run_folder(
            work / "run-unified",
            manifest,
            reports / "unified-run-folder",
            seed0["tasks"],
            unified_floats,
            cfg,
        )
        timings["verify_run_folder"] = time.perf_counter() - t
        log(f"verify: {json.dumps(verify)}")

    timings["total"] = time.perf_counter() - t_all
    data = {
        "config": cfg.to_dict(),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "data": _data_facts(manifest, protocols),
        "unified_epochs": unified_cfg.epochs,
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "train_seconds_mean": {k: round(float(np.mean(v)), 2) for k, v in train_seconds.items()},
        "baseline": _scores(base_results),
        "baseline_dim": int(base.shape[1]),
        "runs": {name: {str(s): v for s, v in per_seed.items()} for name, per_seed in runs.items()},
        "verify": verify,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    write_writeup(data, reports, out)
    log(f"done in {timings['total']:.0f}s: {out / 'REPORT.md'}")
    return data


def _r1_line(results: list[TaskResult]) -> str:
    return "  ".join(
        f"{r.protocol.task} R@1 {r.metrics['float']['R@1']:.3f}/{r.metrics['binary']['R@1']:.3f}"
        for r in results
    )


def _data_facts(manifest: Manifest, protocols: dict[str, TaskProtocol]) -> dict[str, Any]:
    rows = manifest.rows
    return {
        "rows": len(rows),
        "per_split_domain": {
            f"{s}/{d}": int(n) for (s, d), n in rows.groupby(["split", "domain"]).size().items()
        },
        "classes": {t: len(manifest.classes(t)) for t in protocols},
        "protocols": {t: p.describe() for t, p in protocols.items()},
    }
