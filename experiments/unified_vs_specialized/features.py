"""Frozen-backbone features, computed once and cached: eval view of every row, augmented views of training rows.

The eval view goes through the trainer's :func:`trainer.features.cached_features` (the shared eval
preprocessing). Augmented views use the trainer's ``train_transform`` with the same per-(view, row) seed
rule as :mod:`trainer.features`, so they are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainer.backbones import Backbone
from trainer.data.dataset import ImageDataset, train_transform
from trainer.data.manifest import Manifest
from trainer.features import cached_features

__all__ = ["augmented_features", "eval_features"]


def eval_features(backbone: Backbone, manifest: Manifest, *, cache_dir: Path, workers: int) -> np.ndarray:
    """Pooled features (N, F) of every manifest row, eval transform."""
    rows = list(range(len(manifest)))
    spec = backbone.default_input_spec
    return cached_features(
        backbone, manifest, rows, spec=spec, views=1, cache_dir=cache_dir, num_workers=workers
    )[0]


class _AugViews(Dataset):
    def __init__(
        self, manifest: Manifest, rows: Sequence[int], backbone: Backbone, views: int, seed: int
    ) -> None:
        self.data = ImageDataset(manifest, rows, train_transform(backbone.default_input_spec))
        self.n, self.views, self.seed = len(rows), views, seed

    def __len__(self) -> int:
        return self.n * self.views

    def __getitem__(self, k: int) -> torch.Tensor:
        view, pos = divmod(k, self.n)
        aug_seed = int(np.random.default_rng([self.seed, view + 1, pos]).integers(2**31 - 1))
        return self.data[(pos, aug_seed)]["image"]


@torch.no_grad()
def augmented_features(
    backbone: Backbone,
    manifest: Manifest,
    rows: Sequence[int],
    *,
    views: int,
    cache_dir: Path,
    seed: int = 0,
    batch_size: int = 16,
    workers: int = 2,
) -> np.ndarray:
    """Pooled features (views, len(rows), F) of random-resized-crop + flip views, cached as ``.npy``."""
    from tqdm import tqdm

    from trainer.features import feature_cache_key

    key = feature_cache_key(
        backbone, backbone.default_input_spec, manifest, rows, views, seed, extra="augmented-only"
    )
    path = cache_dir / f"{key}.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape == (views, len(rows), backbone.feature_dim):
            return arr
    if views == 0:
        return np.zeros((0, len(rows), backbone.feature_dim), np.float32)
    backbone.eval()
    loader = DataLoader(
        _AugViews(manifest, rows, backbone, views, seed), batch_size=batch_size, num_workers=workers
    )
    out = np.empty((views * len(rows), backbone.feature_dim), np.float32)
    k = 0
    with tqdm(total=len(out), desc=f"augmented features x{views}", unit="img") as bar:
        for x in loader:
            f = backbone(x.contiguous(memory_format=torch.channels_last)).float().numpy()
            out[k : k + len(f)] = f
            k += len(f)
            bar.update(len(f))
    out = out.reshape(views, len(rows), backbone.feature_dim)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out
