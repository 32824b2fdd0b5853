"""What ``emb eval`` evaluates: a trained run folder, or the ImageNet baseline ``imagenet:<backbone>``.

Both become an :class:`Embedder`: a torch module mapping preprocessed images to LayerNorm-ed float
embeddings (bits = value > 0), plus the input contract and a cache key.

The ImageNet baseline is the pretrained backbone's pooled features with no training, binarized the
same way as a trained model: LayerNorm without affine parameters, then sign, i.e. per vector
``sign(f - mean(f))``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from embsdk.errors import RunError
from embsdk.preprocess import InputSpec

__all__ = ["IMAGENET_PREFIX", "Embedder", "LayerNormEmbedding", "load_embedder"]

IMAGENET_PREFIX = "imagenet:"


@dataclass
class Embedder:
    """A model ready to embed images.

    Attributes:
        name: what was asked for (run folder or ``imagenet:<backbone>``).
        module: images (N, 3, S, S) → LayerNorm-ed float embeddings (N, D).
        input_spec: preprocessing contract of the model.
        cache_key: changes whenever the weights or the input contract change.
        backbone: the module's backbone, images → pooled features (``module(x) == head(backbone(x))``):
            ``emb eval`` runs it through ONNX Runtime and reuses the frozen-backbone feature cache.
        head: pooled features → the LayerNorm-ed embedding.
        training_cache: for a run trained on cached features (frozen backbone), what keyed that cache:
            ``{"views": ..., "seed": ..., "tasks": [...], "rows": n}``; view 0 holds the evaluation
            transform's features of the training rows (:mod:`trainer.features`).
    """

    name: str
    module: torch.nn.Module
    input_spec: InputSpec
    cache_key: str
    backbone: Any = None
    head: torch.nn.Module | None = None
    training_cache: dict[str, Any] = field(default_factory=dict)


class LayerNormEmbedding(nn.Module):
    """``features(x)`` → LayerNorm without affine parameters (the binarization module's float side)."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return F.layer_norm(f, f.shape[-1:])


class _LayerNormHead(nn.Module):
    """Pooled features → LayerNorm without affine parameters (the head of :class:`LayerNormEmbedding`)."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(f, f.shape[-1:])


def load_embedder(ref: str | Path) -> Embedder:
    """Load a run folder (via the trainer's ``load_model``) or ``imagenet:<backbone>``.

    Args:
        ref: a run folder written by ``emb train``, or ``imagenet:efficientnet-lite0`` (any registered backbone).

    Returns:
        The :class:`Embedder`.

    Raises:
        RunError: *ref* is neither an existing run folder nor ``imagenet:<backbone>``.
        UnknownBackbone: the backbone name after ``imagenet:`` is not registered.

    Example:
        >>> load_embedder("imagenet:efficientnet-lite0").input_spec.image_size  # doctest: +SKIP
        224
    """
    text = str(ref)
    if text.startswith(IMAGENET_PREFIX):
        return _imagenet_embedder(text[len(IMAGENET_PREFIX) :])
    run_dir = Path(text).expanduser()
    if not run_dir.is_dir():
        raise RunError(
            f"{text!r} is not a run folder (no such directory). Pass a folder written by `emb train`, "
            f"or {IMAGENET_PREFIX}<backbone> for the ImageNet baseline (e.g. {IMAGENET_PREFIX}efficientnet-lite0)."
        )
    from trainer.run import load_model

    model, info = load_model(run_dir)
    cfg = info.config or {}
    frozen = bool(cfg.get("freeze_backbone")) or cfg.get("trainable_blocks") == 0
    training_cache: dict[str, Any] = {}
    if frozen and cfg.get("feature_cache", True):
        training_cache = {
            "views": int(cfg.get("cache_views", 1)),
            "seed": int(cfg.get("seed", 0)),
            "tasks": list(cfg.get("tasks") or info.tasks),
            "manifest_sha256": info.manifest_sha256,
        }
    return Embedder(
        name=text,
        module=model,
        input_spec=info.input_spec,
        cache_key=_run_key(run_dir, info.input_spec),
        backbone=model.backbone,
        head=model.embedding,
        training_cache=training_cache,
    )


def _imagenet_embedder(backbone: str) -> Embedder:
    from trainer.backbones import create_backbone

    net = create_backbone(backbone, pretrained=True)
    spec = net.default_input_spec
    key = f"imagenet:{backbone}|{sorted(spec.to_dict().items())}"
    return Embedder(
        name=f"{IMAGENET_PREFIX}{backbone}",
        module=LayerNormEmbedding(net),
        input_spec=spec,
        cache_key=key,
        backbone=net,
        head=_LayerNormHead(),
    )


def _run_key(run_dir: Path, spec: InputSpec) -> str:
    """Hash of the files the model loads from (name, size, mtime) and the input contract.

    Those are the run folder's own top-level files (``run.json``, ``config.yaml``) and ``checkpoints/``;
    not its subfolders, so that an eval report kept inside the run (``--report RUN/eval``, where
    ``emb publish`` looks) does not change the key every time it is rewritten.
    """
    h = hashlib.sha256(str(sorted(spec.to_dict().items())).encode())
    for f in sorted([*run_dir.glob("*"), *run_dir.glob("checkpoints/**/*")]):
        if f.is_file() and f.suffix in {".pt", ".pth", ".safetensors", ".json", ".yaml"}:
            st = f.stat()
            h.update(f"{f.relative_to(run_dir)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return f"run:{run_dir.resolve()}|{h.hexdigest()}"
