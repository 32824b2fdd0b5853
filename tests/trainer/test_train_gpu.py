"""CUDA paths: mixed precision (bf16 autocast, or fp16 + GradScaler) and training on the GPU. Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _train_data import tiny_config, write_images_manifest

from trainer.config import TrainConfig
from trainer.loop import resume, train
from trainer.run import load_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    return tiny_config(manifest, out, **{"seed": 0, "device": "cuda", **kw})


def test_amp_training_on_cuda_and_resume(tmp_path: Path) -> None:
    manifest = write_images_manifest(tmp_path / "data", per_class=6, test_per_class=0)
    s = train(_cfg(manifest, tmp_path / "amp", max_steps=3), progress=False)
    assert s["amp"] in ("bfloat16", "float16") and s["device"].startswith("cuda") and s["status"] == "stopped"
    done = resume(tmp_path / "amp", progress=False)
    assert done["status"] == "finished" and done["step"] == 6
    model, _ = load_model(tmp_path / "amp")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert next(model.parameters()).device.type == "cpu"  # load_model returns a CPU model


def test_no_amp_on_cuda(tmp_path: Path) -> None:
    manifest = write_images_manifest(tmp_path / "data", per_class=4, test_per_class=0)
    s = train(_cfg(manifest, tmp_path / "fp32", amp=False, epochs=1), progress=False)
    assert s["amp"] == "off" and s["device"].startswith("cuda")


def test_efficientnet_lite0_step_on_cuda(tmp_path: Path) -> None:
    manifest = write_images_manifest(tmp_path / "data", per_class=4, test_per_class=0)
    s = train(
        _cfg(
            manifest,
            tmp_path / "lite0",
            backbone="efficientnet-lite0",
            image_size=96,
            epochs=1,
            trainable_blocks=3,
        ),
        progress=False,
    )
    assert s["status"] == "finished" and s["step"] == 2
