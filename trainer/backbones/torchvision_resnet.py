"""torchvision ResNet-50 / ResNeXt-50 as in the paper: random init, or a local weights file (no download)."""

from __future__ import annotations

from torch import Tensor, nn

from embsdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec

from ._base import Backbone
from ._registry import register_backbone

__all__ = ["TorchvisionResNet"]


class TorchvisionResNet(Backbone):
    """ResNet trunk (conv1 … layer4) → global average pool → (N, 2048)."""

    def __init__(self, arch: str, *, image_size: int | None) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 2048
        self.default_input_spec = InputSpec(
            image_size=image_size or 224, mean=IMAGENET_MEAN, std=IMAGENET_STD
        )

    def units(self) -> list[nn.Module]:
        n = self.net
        return [nn.ModuleList([n.conv1, n.bn1]), n.layer1, n.layer2, n.layer3, n.layer4]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_backbone("resnet50")
def resnet50(*, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """ResNet-50 (random init; pass ``weights_path`` for trained weights: nothing ships in a wheel)."""
    return TorchvisionResNet("resnet50", image_size=image_size)


@register_backbone("resnext50_32x4d")
def resnext50_32x4d(*, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """ResNeXt-50 32x4d (random init, or ``weights_path``)."""
    return TorchvisionResNet("resnext50_32x4d", image_size=image_size)
