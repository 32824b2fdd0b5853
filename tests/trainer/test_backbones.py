"""Backbone factory: every registered backbone builds, runs, freezes; pretrained weights really load offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embsdk.errors import CheckpointError, ConfigError
from embsdk.preprocess import TF_MEAN, TF_STD
from trainer.backbones import UnknownBackbone, create_backbone, list_backbones
from trainer.model import UnifiedEmbeddingModel, embedding_spec


@pytest.mark.parametrize("name", list_backbones())
def test_forward_shape_and_input_spec(name: str) -> None:
    torch.manual_seed(0)
    b = create_backbone(name, pretrained=False, image_size=64).eval()
    assert b.default_input_spec.image_size == 64
    with torch.no_grad():
        f = b(torch.randn(2, 3, 64, 64))
    assert f.shape == (2, b.feature_dim)


@pytest.mark.parametrize("name", list_backbones())
def test_freeze_keeps_only_the_last_blocks_trainable(name: str) -> None:
    b = create_backbone(name, pretrained=False, image_size=64)
    b.freeze(1)
    units = b.units()
    assert all(not p.requires_grad for u in units[:-1] for p in u.parameters())
    assert all(p.requires_grad for p in units[-1].parameters())
    b.train()
    frozen_bn = [m for u in units[:-1] for m in u.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen_bn and all(not m.training for m in frozen_bn)  # frozen BatchNorm keeps its statistics
    b.freeze(0)
    assert b.fully_frozen


def test_efficientnet_lite0_loads_imagenet_weights_from_the_wheel() -> None:
    pre = create_backbone("efficientnet-lite0")
    rand = create_backbone("efficientnet-lite0", pretrained=False)
    assert pre.feature_dim == 1280 and pre.default_input_spec.image_size == 224
    assert pre.default_input_spec.mean == TF_MEAN and pre.default_input_spec.std == TF_STD
    bn = pre.net._bn0
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # trained statistics
    assert not torch.equal(pre.net._conv_stem.weight, rand.net._conv_stem.weight)


def test_weights_path_round_trip_and_bad_file(tmp_path: Path) -> None:
    src = create_backbone("tiny-cnn")
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = create_backbone("tiny-cnn", weights_path=tmp_path / "w.pt")
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k])
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot load backbone weights"):
        create_backbone("tiny-cnn", weights_path=tmp_path / "bad.pt")


def test_unknown_backbone_lists_known_names() -> None:
    with pytest.raises(UnknownBackbone, match="tiny-cnn") as exc:
        create_backbone("vit-huge")
    assert isinstance(exc.value, ConfigError)


def test_model_output_is_layernormed_and_exports_to_onnx(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = UnifiedEmbeddingModel(create_backbone("tiny-cnn", image_size=32), 64).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        emb = model(x)
        z = model.embedding.fc(model.backbone(x))  # reference: LayerNorm without affine, eps 1e-5
    want = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(emb, want, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad is False for p in model.embedding.parameters())
    assert sum(1 for _ in model.embedding.parameters()) == 2  # the Linear only: the LayerNorm has no affine
    assert torch.equal(model.codes(x), emb > 0)
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
    )
    out = ort.InferenceSession(str(path)).run(None, {"image": x[:2].numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), emb[:2], atol=1e-4, rtol=1e-4)
    assert embedding_spec(64)["bit_order"] == "numpy-packbits-big"
