"""The unified embedding model: shared backbone → pooled features → embedding layer → LayerNorm (no affine).

The LayerNorm-ed float embedding is what gets binarized: bit = 1 where the value is > 0, packed in
``numpy.packbits`` big-endian order (:mod:`embsdk.codes`). The float embedding stays available for
re-ranking and evaluation. The module exports with ``torch.onnx.export(..., dynamo=False, opset_version=17)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embsdk.codes import THRESHOLD
from embsdk.spec import EmbeddingSpec

from .backbones import Backbone

__all__ = ["EmbeddingLayer", "UnifiedEmbeddingModel", "embedding_spec"]


class EmbeddingLayer(nn.Module):
    """Linear(feature_dim → dim) then LayerNorm without affine parameters (zero mean, unit variance per vector)."""

    def __init__(self, feature_dim: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(feature_dim, dim)
        self.dim = dim

    def forward(self, features: Tensor) -> Tensor:
        return F.layer_norm(self.fc(features), (self.dim,))


class UnifiedEmbeddingModel(nn.Module):
    """Backbone + embedding layer; ``forward(x) -> (N, embedding_dim)`` LayerNorm-ed float embedding.

    Example:
        >>> from trainer.backbones import create_backbone
        >>> m = UnifiedEmbeddingModel(create_backbone("tiny-cnn"), 256)
        >>> m(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 256])
    """

    def __init__(self, backbone: Backbone, embedding_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding = EmbeddingLayer(backbone.feature_dim, embedding_dim)
        self.embedding_dim = embedding_dim

    @property
    def input_spec(self) -> Any:
        return self.backbone.default_input_spec

    def embed(self, features: Tensor) -> Tensor:
        """Pooled backbone features (N, feature_dim) → float embedding (N, D) (used with cached features)."""
        return self.embedding(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.embedding(self.backbone(x))

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Bits (N, D) as bool: 1 where the embedding is > 0 (unpacked; pack with :func:`embsdk.codes.pack_codes`)."""
        return self.forward(x) > THRESHOLD


def embedding_spec(dim: int, float_dtype: str = "float32") -> dict[str, Any]:
    """The embedding contract recorded with every run and generation: one bit per dimension, serialized.

    ``EmbeddingSpec(bits=dim, dim=dim, float_dtype=float_dtype).to_dict()`` (see :mod:`embsdk.spec`).
    """
    return EmbeddingSpec(bits=dim, dim=dim, float_dtype=float_dtype).to_dict()
