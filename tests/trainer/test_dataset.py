"""Transforms and datasets: the eval transform IS embsdk.preprocess; augmentation is seeded per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _train_data import write_images_manifest
from PIL import Image

from embsdk.preprocess import TF_MEAN, TF_STD, InputSpec, load_image
from trainer.data.dataset import FeatureDataset, ImageDataset, eval_transform, train_transform
from trainer.data.manifest import Manifest


def test_eval_transform_is_exactly_the_sdk_preprocessing(tmp_path: Path) -> None:
    path = write_images_manifest(tmp_path, per_class=1, test_per_class=0)
    m = Manifest.load(path)
    spec = InputSpec(image_size=32, mean=TF_MEAN, std=TF_STD)
    ds = ImageDataset(m, [0, 2], eval_transform(spec))
    item = ds[1]
    assert item["index"] == 2 and item["position"] == 1
    np.testing.assert_array_equal(item["image"].numpy(), load_image(m.image_path(2), spec))


def test_train_transform_is_seeded_and_normalized_like_eval() -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    spec = InputSpec(image_size=24)
    t = train_transform(spec)
    a, b, c = t(img, 1), t(img, 1), t(img, 2)
    assert a.shape == (3, 24, 24) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a full-image "crop" without flip equals resize + the same normalization as the SDK
    full = train_transform(spec, scale=(1.0, 1.0), ratio=(70 / 50, 70 / 50), flip=0.0)(img, 0)
    want = np.asarray(img.resize((24, 24), resample=3), np.float32) / 255.0
    want = ((want - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(full, want, atol=1e-6)


def test_image_dataset_accepts_position_and_seed(tmp_path: Path) -> None:
    m = Manifest.load(write_images_manifest(tmp_path, per_class=1, test_per_class=0))
    ds = ImageDataset(m, list(range(len(m))), train_transform(InputSpec(image_size=16)))
    assert len(ds) == 4
    torch.testing.assert_close(ds[(3, 9)]["image"], ds[(3, 9)]["image"])


def test_feature_dataset_picks_the_view_from_the_seed() -> None:
    feats = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    ds = FeatureDataset(feats, [10, 11, 12])
    assert ds[1]["index"] == 11
    torch.testing.assert_close(ds[1]["image"], torch.from_numpy(feats[0, 1]))
    torch.testing.assert_close(ds[(1, 5)]["image"], torch.from_numpy(feats[1, 1]))


def test_image_dataset_decodes_through_the_one_bounded_decoder(tmp_path: Path) -> None:
    from embsdk.preprocess import decode_side

    path = tmp_path / "img" / "big.jpg"
    path.parent.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).resize((1200, 900)).save(path)
    (tmp_path / "m.csv").write_text("image,task.t\nimg/big.jpg,a\n")
    m = Manifest.load(tmp_path / "m.csv")
    spec = InputSpec(image_size=32)
    ds = ImageDataset(m, [0], eval_transform(spec))
    assert ds.min_side == decode_side(spec)  # large JPEGs decode reduced, as in the SDK
    np.testing.assert_array_equal(ds[0]["image"].numpy(), load_image(path, spec))
