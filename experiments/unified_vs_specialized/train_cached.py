"""Train the embedding layer and per-task heads on cached frozen-backbone features.

Reuses the trainer's parts: :class:`trainer.model.EmbeddingLayer` (Linear → LayerNorm without affine),
:class:`trainer.heads.NormSoftmaxHead` (cosine / temperature → cross-entropy),
:class:`trainer.heads.MultiTaskLoss` (equal-weight sum; rows without a task's label give it no gradient; its
``binary_weight`` is the binarization-aware term, as in ``emb train --binary-loss-weight``)
and :class:`trainer.data.MixedTaskBatchSampler` (every batch mixes the task datasets uniformly).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from trainer.data.manifest import Manifest
from trainer.data.sampler import MixedTaskBatchSampler
from trainer.evaluate.protocol import CATALOG_DOMAIN
from trainer.heads import IGNORE, MultiTaskLoss, NormSoftmaxHead
from trainer.model import EmbeddingLayer

from .config import ExperimentConfig

__all__ = ["TrainedEmbedding", "train_embedding"]


@dataclass
class TrainedEmbedding:
    """A trained embedding layer and what it was trained on."""

    name: str
    tasks: list[str]
    seed: int
    layer: EmbeddingLayer
    classes: dict[str, list[str]]
    steps: int
    seconds: float
    loss_log: list[dict[str, float]] = field(default_factory=list)

    @torch.no_grad()
    def embed(self, features: np.ndarray) -> np.ndarray:
        """Pooled features (N, F) → LayerNorm-ed float embeddings (N, D)."""
        self.layer.eval()
        return self.layer(torch.from_numpy(np.array(features, dtype=np.float32))).numpy()


def _task_pools(
    manifest: Manifest, rows: np.ndarray, tasks: list[str], catalog_repeat: int
) -> tuple[dict, dict, dict]:
    """Per task: class list, label id per training position (IGNORE when unlabelled), sampling pool."""
    domains = (
        manifest.rows["domain"].fillna("").astype(str).to_numpy()
        if "domain" in manifest.rows.columns
        else None
    )
    classes, label_ids, pools = {}, {}, {}
    for task in tasks:
        classes[task] = manifest.classes(task)
        index = {c: i for i, c in enumerate(classes[task])}
        col = manifest.labels(task).to_numpy(dtype=object)[rows]
        ids = np.array([index.get(v, IGNORE) if v is not None else IGNORE for v in col], dtype=np.int64)
        label_ids[task] = ids
        pool = np.flatnonzero(ids != IGNORE)
        if domains is not None and catalog_repeat > 1:
            extra = pool[domains[rows][pool] == CATALOG_DOMAIN]
            pool = np.concatenate([pool, *([extra] * (catalog_repeat - 1))])
        pools[task] = pool
    return classes, label_ids, pools


def train_embedding(
    name: str,
    tasks: list[str],
    features: np.ndarray,
    rows: np.ndarray,
    manifest: Manifest,
    cfg: ExperimentConfig,
    *,
    seed: int,
) -> TrainedEmbedding:
    """Train one model (specialized: one task; unified: all) on cached features.

    Args:
        name: model name for logs.
        tasks: the tasks whose heads are trained.
        features: (V, n, F) cached features of the training rows (view 0 = eval transform).
        rows: the n manifest rows of those features.
        manifest: the manifest (labels, class lists, domains).
        cfg: the experiment settings (dim, epochs, batch size, lr, temperature, catalog_repeat).
        seed: seeds the initialization and the batch order.
    """
    torch.manual_seed(seed)
    classes, label_ids, pools = _task_pools(manifest, rows, tasks, cfg.catalog_repeat)
    views, _, feat_dim = features.shape
    layer = EmbeddingLayer(feat_dim, cfg.embedding_dim)
    heads = {
        t: NormSoftmaxHead(len(classes[t]), cfg.embedding_dim, temperature=cfg.temperature) for t in tasks
    }
    objective = MultiTaskLoss(
        heads, binary_weight=cfg.binary_loss_weight
    )  # > 0: also on sign(emb), straight-through
    params = [*layer.parameters(), *objective.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_labelled = len(np.unique(np.concatenate(list(pools.values()))))
    sampler = MixedTaskBatchSampler(
        pools, cfg.batch_size, seed=seed, batches_per_epoch=max(1, math.ceil(n_labelled / cfg.batch_size))
    )
    total = cfg.epochs * sampler.batches_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    feats = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    labels = {t: torch.from_numpy(label_ids[t]) for t in tasks}
    log: list[dict[str, float]] = []
    start, step = time.perf_counter(), 0
    layer.train()
    objective.train()
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        for batch in sampler.global_batches(epoch):
            pos = torch.tensor([p for p, _, _ in batch])
            view = torch.tensor([s % views for _, s, _ in batch])
            drawn = np.array([t for _, _, t in batch])
            emb = layer(feats[view, pos])
            y = {t: labels[t][pos] for t in tasks}
            if cfg.label_mode == "drawn":
                y = {t: torch.where(torch.from_numpy(drawn == t), y[t], IGNORE) for t in tasks}
            loss, per_task = objective(emb, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            for t, v in per_task.items():
                sums[t] = sums.get(t, 0.0) + float(v)
        log.append({"epoch": epoch, **{t: v / sampler.batches_per_epoch for t, v in sums.items()}})
    return TrainedEmbedding(
        name, list(tasks), seed, layer.eval(), classes, step, time.perf_counter() - start, log
    )
