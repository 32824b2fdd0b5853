"""Cache pooled features of a frozen backbone, so the embedding layer and heads train in minutes on CPU.

View 0 of every image uses the evaluation transform; views 1.. use the training augmentation with a
fixed per-(view, row) seed. The cache lives in ``$EMB_HOME/cache/features/<key>.npy`` where the key hashes
everything that determines the values (backbone, weights, input spec, manifest hash, rows, views, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from embsdk.config import get_settings
from embsdk.preprocess import InputSpec

from .backbones import Backbone
from .data.dataset import ImageDataset, eval_transform, train_transform
from .data.manifest import Manifest

__all__ = [
    "cached_features",
    "compute_features",
    "feature_cache_key",
    "read_cached_features",
    "write_cached_features",
]


def feature_cache_key(
    backbone: Backbone,
    spec: InputSpec,
    manifest: Manifest,
    rows: Sequence[int],
    views: int,
    seed: int,
    extra: str = "",
) -> str:
    """A hex digest naming one cached feature array."""
    weights = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        weights.update(name.encode())
        weights.update(
            tensor.detach().cpu().contiguous().numpy().tobytes()[:4096]
        )  # cheap but weight-specific
    payload = {
        "backbone": backbone.name,
        "weights": weights.hexdigest(),
        "spec": spec.to_dict(),
        "manifest": manifest.sha256,
        "rows": hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest(),
        "views": views,
        "seed": seed,
        "extra": extra,
        "format": 1,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


class _ViewDataset(torch.utils.data.Dataset):
    def __init__(
        self, manifest: Manifest, rows: Sequence[int], spec: InputSpec, views: int, seed: int
    ) -> None:
        self.eval = ImageDataset(manifest, rows, eval_transform(spec))
        self.train = ImageDataset(manifest, rows, train_transform(spec))
        self.n, self.views, self.seed = len(rows), views, seed

    def __len__(self) -> int:
        return self.n * self.views

    def __getitem__(self, k: int) -> dict:
        view, pos = divmod(k, self.n)
        if view == 0:
            return self.eval[pos]
        return self.train[(pos, int(np.random.default_rng([self.seed, view, pos]).integers(2**31 - 1)))]


@torch.no_grad()
def compute_features(
    backbone: Backbone,
    manifest: Manifest,
    rows: Sequence[int],
    *,
    spec: InputSpec,
    views: int = 1,
    seed: int = 0,
    batch_size: int = 16,
    num_workers: int = 2,
    device: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Pooled features ``(views, len(rows), feature_dim)`` float32 of *backbone* in eval mode."""
    from tqdm.auto import tqdm

    backbone.eval().to(device)
    data = _ViewDataset(manifest, rows, spec, views, seed)
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    out = np.empty((len(data), backbone.feature_dim), np.float32)
    k = 0
    with tqdm(total=len(data), desc=f"features {backbone.name}", unit="img", disable=not progress) as bar:
        for batch in loader:
            x = batch["image"].to(device).contiguous(memory_format=torch.channels_last)
            f = backbone(x).float().cpu().numpy()
            out[k : k + len(f)] = f
            k += len(f)
            bar.update(len(f))
    return out.reshape(views, len(rows), backbone.feature_dim)


def _cache_dir(cache_dir: Path | None) -> Path:
    return cache_dir or get_settings().home / "cache" / "features"


def read_cached_features(
    backbone: Backbone,
    spec: InputSpec,
    manifest: Manifest,
    rows: Sequence[int],
    *,
    views: int = 1,
    seed: int = 0,
    extra: str = "",
    cache_dir: Path | None = None,
) -> np.ndarray | None:
    """The cached ``(views, len(rows), feature_dim)`` array for exactly these inputs, or None.

    The key hashes the weights, the input spec, the manifest, the rows, views and seed, so a hit is the
    array :func:`compute_features` would return (``emb eval`` reuses view 0 of a frozen-backbone training
    run's cache this way).
    """
    key = feature_cache_key(backbone, spec, manifest, rows, views, seed, extra)
    path = _cache_dir(cache_dir) / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable cache entry: recompute
    if arr.shape != (views, len(rows), backbone.feature_dim):
        return None
    return np.asarray(arr)


def write_cached_features(
    feats: np.ndarray,
    backbone: Backbone,
    spec: InputSpec,
    manifest: Manifest,
    rows: Sequence[int],
    *,
    views: int = 1,
    seed: int = 0,
    extra: str = "",
    cache_dir: Path | None = None,
) -> Path:
    """Store *feats* under the key of these inputs (atomically); returns the file."""
    folder = _cache_dir(cache_dir)
    path = folder / f"{feature_cache_key(backbone, spec, manifest, rows, views, seed, extra)}.npy"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        np.save(f, feats)
    os.replace(tmp, path)
    return path


def cached_features(
    backbone: Backbone,
    manifest: Manifest,
    rows: Sequence[int],
    *,
    spec: InputSpec,
    views: int = 1,
    seed: int = 0,
    num_workers: int = 2,
    device: str = "cpu",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Like :func:`compute_features`, but read from / written to the feature cache."""
    hit = read_cached_features(backbone, spec, manifest, rows, views=views, seed=seed, cache_dir=cache_dir)
    if hit is not None:
        return hit
    feats = compute_features(
        backbone,
        manifest,
        rows,
        spec=spec,
        views=views,
        seed=seed,
        num_workers=num_workers,
        device=device,
        progress=progress,
    )
    write_cached_features(feats, backbone, spec, manifest, rows, views=views, seed=seed, cache_dir=cache_dir)
    return feats
