"""Build everything a run needs from its config: validated data, label tensors, model, losses, optimizer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from embsdk.errors import ManifestError

from .backbones import create_backbone
from .config import TrainConfig
from .data.dataset import FeatureDataset, ImageDataset, train_transform
from .data.manifest import Manifest, ValidationReport, validate
from .data.sampler import MixedTaskBatchSampler
from .heads import IGNORE, MultiTaskLoss, NormSoftmaxHead
from .model import UnifiedEmbeddingModel

__all__ = ["TrainData", "TrainModule", "build_model", "build_optimizer", "prepare_data"]


@dataclass
class TrainData:
    manifest: Manifest
    tasks: list[str]
    classes: dict[str, list[str]]
    rows: list[int]  # manifest rows used (validated train rows), dataset position -> row
    labels: dict[str, torch.Tensor]  # task -> (len(manifest),) class id or IGNORE, indexed by manifest row
    report: ValidationReport

    def _row_labels(self, task: str) -> np.ndarray:
        """Class id (or IGNORE) of every dataset position for *task*."""
        return self.labels[task].numpy()[np.asarray(self.rows, dtype=np.int64)]

    def task_rows(self) -> dict[str, list[int]]:
        """Task → dataset positions labeled for it."""
        return {t: np.flatnonzero(self._row_labels(t) != IGNORE).tolist() for t in self.tasks}

    def task_classes(self) -> dict[str, list[int]]:
        """Task → class id of each position in :meth:`task_rows` (same order)."""
        return {t: self._row_labels(t)[ps].tolist() for t, ps in self.task_rows().items()}


def prepare_data(config: TrainConfig, manifest: Manifest | None = None) -> TrainData:
    """Load and validate the manifest's train split for the configured tasks (before any training).

    Raises:
        ManifestError: unknown task, empty manifest, or (strict) a bad row.
    """
    manifest = manifest or Manifest.load(config.manifest, strict=config.strict)
    tasks = list(config.tasks or manifest.tasks)
    for t in tasks:
        if t not in manifest.tasks:
            raise ManifestError(
                f"no task {t!r} in the manifest (tasks: {', '.join(manifest.tasks)})", path=str(manifest.path)
            )
    columns = {t: manifest.labels(t).tolist() for t in tasks}
    train_rows = [  # all rows when the manifest has no split column
        r for r in manifest.indices("train") if any(columns[t][r] is not None for t in tasks)
    ]
    report = validate(
        manifest, strict=config.strict, check_images=config.check_images, tasks=tasks, rows=train_rows
    )
    classes = {t: manifest.classes(t) for t in tasks}
    labels = {}
    for t in tasks:
        lookup = {c: i for i, c in enumerate(classes[t])}  # None (no label) is not a key: IGNORE
        labels[t] = torch.tensor([lookup.get(v, IGNORE) for v in columns[t]], dtype=torch.long)
    return TrainData(
        manifest=manifest, tasks=tasks, classes=classes, rows=report.good, labels=labels, report=report
    )


def build_model(config: TrainConfig) -> UnifiedEmbeddingModel:
    backbone = create_backbone(
        config.backbone,
        pretrained=config.pretrained,
        image_size=config.image_size,
        weights_path=config.weights_path,
    )
    model = UnifiedEmbeddingModel(backbone, config.embedding_dim)
    if config.frozen_blocks_mode is not None:
        backbone.freeze(config.frozen_blocks_mode)
    return model


def build_dataset(
    config: TrainConfig, data: TrainData, model: UnifiedEmbeddingModel, *, progress: bool, device: str
) -> Any:
    spec = model.input_spec
    if config.uses_feature_cache:
        from .features import cached_features

        feats = cached_features(
            model.backbone,
            data.manifest,
            data.rows,
            spec=spec,
            views=config.cache_views,
            seed=config.seed,
            num_workers=config.num_workers,
            device=device,
            progress=progress,
        )
        return FeatureDataset(feats, data.rows)
    return ImageDataset(data.manifest, data.rows, train_transform(spec))


def build_sampler(config: TrainConfig, data: TrainData, rank: int, world: int) -> MixedTaskBatchSampler:
    return MixedTaskBatchSampler(
        data.task_rows(),
        config.batch_size,
        seed=config.seed,
        mode=config.sampler,
        task_classes=data.task_classes(),
        rank=rank,
        world_size=world,
    )


class TrainModule(nn.Module):
    """Model + multi-task loss in one module (what DDP wraps): ``forward(x, labels) -> (total, per_task)``."""

    def __init__(self, model: UnifiedEmbeddingModel, loss: MultiTaskLoss, *, features: bool) -> None:
        super().__init__()
        self.model, self.loss, self.features = model, loss, features

    def forward(
        self, x: torch.Tensor, labels: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emb = self.model.embed(x) if self.features else self.model(x)
        return self.loss(emb.float(), labels)


def build_loss(config: TrainConfig, data: TrainData) -> MultiTaskLoss:
    heads = {
        t: NormSoftmaxHead(
            len(data.classes[t]), config.embedding_dim, config.temperature, config.sample_negatives
        )
        for t in data.tasks
    }
    return MultiTaskLoss(heads, config.task_weights, binary_weight=config.binary_loss_weight)


def build_optimizer(config: TrainConfig, module: TrainModule) -> torch.optim.Optimizer:
    backbone = [p for p in module.model.backbone.parameters() if p.requires_grad]
    rest = [
        p for n, p in module.named_parameters() if p.requires_grad and not n.startswith("model.backbone.")
    ]
    groups = [{"params": rest, "lr": config.lr}]
    if backbone and not config.uses_feature_cache:
        groups.append({"params": backbone, "lr": config.lr * config.backbone_lr_mult})
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
        )
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup for ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""
    warm = config.warmup_steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
