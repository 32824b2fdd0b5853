"""Data: the manifest, its validation, the Grocery builder, datasets/transforms and the task-mixing sampler.

Names resolve lazily so ``emb data`` (manifest only) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMOD_ATTRS = {
    "manifest": ["Manifest", "ValidationReport", "BadRow", "validate", "TASK_PREFIX"],
    "dataset": ["ImageDataset", "FeatureDataset", "eval_transform", "train_transform"],
    "sampler": ["MixedTaskBatchSampler", "SAMPLERS"],
    "grocery": ["write_grocery_manifest"],
}
_ATTR_TO_MOD = {name: mod for mod, names in _SUBMOD_ATTRS.items() for name in names}
__all__ = [  # noqa: RUF022
    "Manifest",
    "ValidationReport",
    "BadRow",
    "validate",
    "TASK_PREFIX",
    "ImageDataset",
    "FeatureDataset",
    "eval_transform",
    "train_transform",
    "MixedTaskBatchSampler",
    "SAMPLERS",
    "write_grocery_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _ATTR_TO_MOD:
        return getattr(importlib.import_module(f"{__name__}.{_ATTR_TO_MOD[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
