"""Save a cached-feature model as a regular run folder, and check it through ``emb eval`` on real images.

The folder follows :mod:`trainer.run` (``run.json`` + ``checkpoints/last.pt`` holding the full
:class:`trainer.model.UnifiedEmbeddingModel` state: the frozen pretrained backbone plus the trained
embedding layer), so ``emb eval``, ``load_model`` and the exporter take it like any trained run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainer.backbones import Backbone
from trainer.checkpoint import save_checkpoint
from trainer.data.manifest import Manifest
from trainer.model import UnifiedEmbeddingModel, embedding_spec
from trainer.run import RUN_JSON, code_version, write_json_atomic

from .config import ExperimentConfig
from .train_cached import TrainedEmbedding

__all__ = ["save_run_folder", "verify_run_folder"]


def save_run_folder(
    run_dir: Path, model: TrainedEmbedding, backbone: Backbone, manifest: Manifest, cfg: ExperimentConfig
) -> Path:
    """Write *model* (embedding layer on the frozen *backbone*) as a run folder; return it."""
    full = UnifiedEmbeddingModel(backbone, cfg.embedding_dim)
    full.embedding.load_state_dict(model.layer.state_dict())
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": full.state_dict(), "step": model.steps}, run_dir / "checkpoints" / "last.pt")
    write_json_atomic(
        run_dir / RUN_JSON,
        {
            "backbone": cfg.backbone,
            "tasks": model.tasks,
            "classes": model.classes,
            "embedding_spec": embedding_spec(cfg.embedding_dim),
            "input_spec": backbone.default_input_spec.to_dict(),
            "manifest": {"path": str(manifest.path), "sha256": manifest.sha256},
            "code_version": code_version(),
            "config": {**cfg.to_dict(), "freeze_backbone": True, "feature_cache": True, "seed": model.seed},
            "status": "finished",
            "step": model.steps,
            "trained_by": "experiments.unified_vs_specialized (cached frozen-backbone features)",
        },
    )
    return run_dir


def verify_run_folder(
    run_dir: Path,
    manifest: Manifest,
    report_dir: Path,
    expected: dict[str, Any],
    cached_floats: np.ndarray,
    cfg: ExperimentConfig,
) -> dict[str, Any]:
    """Check the saved run folder through ``emb eval``'s own code path, from the image files.

    With ``cfg.verify_rows > 0``: load it with :func:`trainer.evaluate.models.load_embedder` (what ``emb eval``
    does), embed that many sampled rows with :func:`trainer.evaluate.embed.embed_paths`, and compare with the
    cached-feature embeddings (max |diff|, share of identical bits). With ``-1``: run the full ``emb eval`` and
    compare R@1 per task and code.
    """
    if cfg.verify_rows < 0:
        return _verify_full(run_dir, manifest, report_dir, expected, cfg)
    from trainer.evaluate.embed import embed_paths
    from trainer.evaluate.models import load_embedder

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(manifest), size=min(cfg.verify_rows, len(manifest)), replace=False))
    embedder = load_embedder(run_dir)
    floats, valid, _errs, ips = embed_paths(
        embedder.module,
        [manifest.image_path(int(r)) for r in rows],
        embedder.input_spec,
        batch_size=cfg.feature_batch_size,
        workers=cfg.workers,
        desc="verify run folder",
    )
    ref = cached_floats[rows]
    same_bits = float(np.mean((floats > 0) == (ref > 0)))
    return {
        "mode": f"{len(rows)} sampled rows embedded through emb eval's loader (load_embedder + embed_paths)",
        "rows": len(rows),
        "valid": int(valid.sum()),
        "max_abs_float_diff": float(np.max(np.abs(floats - ref))),
        "identical_bits": same_bits,
        "identical_codes": float(np.mean(np.all((floats > 0) == (ref > 0), axis=1))),
        "images_per_second": ips,
    }


def _verify_full(
    run_dir: Path, manifest: Manifest, report_dir: Path, expected: dict[str, Any], cfg: ExperimentConfig
) -> dict[str, Any]:
    from trainer.evaluate import evaluate

    got = evaluate(
        run_dir,
        manifest.path,
        report_dir,
        split=cfg.split,
        tasks=cfg.tasks,
        batch_size=cfg.feature_batch_size,
        workers=cfg.workers,
    )
    diffs = {
        f"{task}/{kind}": got["tasks"][task][kind]["R@1"] - expected[task][kind]["R@1"]
        for task in cfg.tasks
        for kind in ("float", "binary")
    }
    return {
        "mode": f"full: emb eval {run_dir} --manifest {manifest.path} --report {report_dir}",
        "r1_emb_eval": {k: got["tasks"][k.split("/")[0]][k.split("/")[1]]["R@1"] for k in diffs},
        "r1_diff": diffs,
        "max_abs_r1_diff": max(abs(v) for v in diffs.values()),
        "images_per_second": got["images_per_second"],
    }
