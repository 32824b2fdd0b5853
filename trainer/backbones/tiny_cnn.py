"""A four-layer CNN for tests: trains in seconds on CPU, deterministic, ONNX-exportable."""

from __future__ import annotations

from torch import Tensor, nn

from embsdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec

from ._base import Backbone
from ._registry import register_backbone

__all__ = ["TinyCNN"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class TinyCNN(Backbone):
    """4 strided conv blocks (16-32-64-64 channels) → global average pool → (N, 64)."""

    def __init__(self, *, image_size: int | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_block(3, 16), _block(16, 32), _block(32, 64), _block(64, 64)])
        self.feature_dim = 64
        self.default_input_spec = InputSpec(image_size=image_size or 64, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def units(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))


@register_backbone("tiny-cnn")
def tiny_cnn(*, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """Tiny CNN, random init (``pretrained`` is ignored)."""
    return TinyCNN(image_size=image_size)
