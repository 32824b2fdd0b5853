"""Datasets and transforms: decode + augment happen in DataLoader workers.

``eval_transform(spec)`` is exactly :func:`embsdk.preprocess.preprocess_image` (the trainer, exporter and
client share it). ``train_transform(spec)`` adds a random resized crop and a horizontal flip in front of the
SAME normalization. Randomness comes from a per-sample seed chosen by the sampler, so a resumed run sees
exactly the same augmented images as an uninterrupted one, whatever the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from embsdk.errors import ImageDecodeError
from embsdk.preprocess import _RESAMPLE, InputSpec, decode_side, open_image, preprocess_image

from .manifest import Manifest

__all__ = ["FeatureDataset", "ImageDataset", "Transform", "eval_transform", "train_transform"]

Transform = Callable[[Any, "int | None"], np.ndarray]


class _EvalTransform:
    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def __call__(self, img: Any, seed: int | None = None) -> np.ndarray:
        return preprocess_image(img, self.spec)


class _TrainTransform:
    def __init__(
        self, spec: InputSpec, scale: tuple[float, float], ratio: tuple[float, float], flip: float
    ) -> None:
        self.spec, self.scale, self.ratio, self.flip = spec, scale, ratio, flip

    def _crop_box(self, w: int, h: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = w * h
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                return left, top, left + cw, top + ch
        s = min(w, h)  # fallback: central square
        return (w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s

    def __call__(self, img: Any, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        box = self._crop_box(*img.size, rng)
        size = self.spec.image_size
        img = img.resize((size, size), resample=_RESAMPLE[self.spec.interpolation], box=box)
        if rng.uniform() < self.flip:
            img = img.transpose(0)  # PIL.Image.Transpose.FLIP_LEFT_RIGHT
        x = np.asarray(img, dtype=np.float32) / 255.0
        x = (x - np.asarray(self.spec.mean, np.float32)) / np.asarray(self.spec.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def eval_transform(spec: InputSpec) -> Transform:
    """The evaluation transform: exactly :func:`embsdk.preprocess.preprocess_image` for *spec*."""
    return _EvalTransform(spec)


def train_transform(
    spec: InputSpec,
    *,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
) -> Transform:
    """Training augmentation: random resized crop (area *scale*, aspect *ratio*) + flip, then *spec*'s normalization."""
    return _TrainTransform(spec, scale, ratio, flip)


def _split_key(key: int | tuple[int, int] | Sequence[int]) -> tuple[int, int | None]:
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), None


class ImageDataset(Dataset):
    """Images of a manifest's rows *indices*; item ``k`` (or ``(k, seed)``) → ``{"image", "index", "position"}``.

    ``image`` is a float32 tensor (3, S, S), ``index`` the manifest row, ``position`` = k.

    Images decode through :func:`embsdk.preprocess.open_image` (bounded: too-large images are refused).

    Raises:
        ImageDecodeError: an image is missing, corrupt or too large (validate the manifest first to skip such rows).
    """

    def __init__(self, manifest: Manifest, indices: Sequence[int], transform: Transform) -> None:
        self.manifest, self.indices, self.transform = manifest, list(indices), transform
        self.paths = [manifest.image_path(i) for i in self.indices]
        spec: InputSpec | None = getattr(transform, "spec", None)
        self.min_side = decode_side(spec) if spec is not None else None  # large JPEGs decode reduced

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        pos, seed = _split_key(key)
        img = open_image(self.paths[pos], min_side=self.min_side)
        try:
            x = self.transform(img, seed)
        except (OSError, ValueError) as exc:
            raise ImageDecodeError(str(self.paths[pos]), str(exc)) from None
        return {"image": torch.from_numpy(x), "index": self.indices[pos], "position": pos}


class FeatureDataset(Dataset):
    """Cached pooled backbone features, ``features[view, position]``; same item protocol as :class:`ImageDataset`.

    View 0 is the evaluation transform; views 1.. are augmented. With a seed, the view is ``seed % views``.
    """

    def __init__(self, features: np.ndarray, indices: Sequence[int]) -> None:
        self.features = features if features.ndim == 3 else features[None]
        self.indices = list(indices)
        if self.features.shape[1] != len(self.indices):
            raise ValueError(f"{self.features.shape[1]} cached feature rows for {len(self.indices)} indices")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        pos, seed = _split_key(key)
        view = 0 if seed is None else seed % self.features.shape[0]
        return {
            "image": torch.from_numpy(np.array(self.features[view, pos], dtype=np.float32)),
            "index": self.indices[pos],
            "position": pos,
        }
