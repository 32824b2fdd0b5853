"""ONNX export: the code is packed inside the graph exactly like numpy.packbits, and parity is enforced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embsdk.codes import pack_codes
from embsdk.errors import ExportError, ImageDecodeError, ParityError
from embsdk.preprocess import load_images

from .conftest import SPEC, make_tiny_model

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


def _run(onnx_path: Path, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return tuple(sess.run(["embedding", "code"], {"image": batch}))  # type: ignore[return-value]


def test_export_graph_contract_and_parity(tmp_path: Path, images: list[Path]) -> None:
    import onnx

    from trainer.export import export_model, sha256_file

    model = make_tiny_model(3)
    info = export_model(model, tmp_path / "exp", input_spec=SPEC, parity_images=images)
    onnx_path = tmp_path / "exp" / "model.onnx"
    proto = onnx.load(str(onnx_path))
    assert proto.opset_import[0].version == 17
    (inp,) = proto.graph.input
    assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 3, 32, 32]
    outs = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output}
    assert outs == {"embedding": onnx.TensorProto.FLOAT, "code": onnx.TensorProto.UINT8}
    # the packing is in the graph: compare with the numpy reference on fresh images and odd batch sizes
    batch = load_images(images, SPEC)
    with torch.no_grad():
        ref = model(torch.from_numpy(batch)).numpy()
    for n in (1, 5, len(batch)):
        emb, code = _run(onnx_path, batch[:n])
        assert code.dtype == np.uint8 and code.shape == (n, 8)
        np.testing.assert_array_equal(code, pack_codes(emb))
        np.testing.assert_array_equal(code, pack_codes(ref[:n]))
    meta = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert meta == info
    assert meta["model"]["sha256"] == sha256_file(onnx_path)
    p = meta["parity"]
    assert p["passed"] and p["n_images"] == len(images)
    assert 0 <= p["max_abs_diff"] <= 1e-4 and p["bit_agreement"] >= 0.999
    assert (
        meta["embedding_spec"]["bits"] == 64 and meta["embedding_spec"]["bit_order"] == "numpy-packbits-big"
    )
    assert meta["input_spec"]["image_size"] == 32


def test_code_padding_for_dims_not_multiple_of_8(tmp_path: Path, images: list[Path]) -> None:
    """The graph pads like numpy.packbits; the export refuses such a model (an EmbeddingSpec's bits are whole bytes)."""
    from trainer.export import PackedCodeGraph, export_model

    model = make_tiny_model(0, dim=13)
    with torch.no_grad():
        emb, code = PackedCodeGraph(model, 13).eval()(torch.from_numpy(load_images(images, SPEC)))
    assert code.shape == (len(images), 2)
    np.testing.assert_array_equal(code.numpy(), np.packbits(emb.numpy() > 0, axis=1))
    with pytest.raises(ExportError, match="multiple of 8"):
        export_model(model, tmp_path, input_spec=SPEC, parity_images=images[:4])
    assert not (tmp_path / "model.onnx").exists()


class _NoisyModel(torch.nn.Module):
    """Adds fresh noise on each call: PyTorch and ONNX Runtime draw different noise, so parity must fail."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_tiny_model(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 0.5 * torch.randn_like(self.inner(x))


def test_failing_parity_raises_and_writes_nothing(tmp_path: Path, images: list[Path]) -> None:
    from trainer.export import export_model

    out = tmp_path / "exp"
    with pytest.raises(ParityError, match=r"float max \|diff\|.*> 0.0001"):
        export_model(_NoisyModel(), out, input_spec=SPEC, parity_images=images)
    assert list(out.iterdir()) == []


def test_bad_parity_inputs(tmp_path: Path, corrupt_image: Path, images: list[Path]) -> None:
    from trainer.export import export_model

    with pytest.raises(ImageDecodeError, match="truncated.jpg"):
        export_model(make_tiny_model(), tmp_path, input_spec=SPEC, parity_images=[images[0], corrupt_image])
    with pytest.raises(ExportError, match="No images"):
        export_model(make_tiny_model(), tmp_path, input_spec=SPEC, parity_images=[])


def test_read_export_detects_tampering(tiny_exports: list[Path], tmp_path: Path) -> None:
    import shutil

    from trainer.export import read_export

    assert read_export(tiny_exports[0])["model"]["file"] == "model.onnx"
    copy = tmp_path / "copy"
    shutil.copytree(tiny_exports[0], copy)
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ExportError, match="hashes to"):
        read_export(copy)
    with pytest.raises(ExportError, match="not an export folder"):
        read_export(tmp_path)


def test_emb_export_cli_on_a_trained_run(tiny_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from trainer.run import read_run_info

    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    run = read_run_info(tiny_run)
    assert data["parity"]["passed"] and data["parity"]["n_images"] == 16  # the run's manifest images
    assert (
        data["embedding_spec"]["bits"] == run.embedding_spec["bits"]
        and data["input_spec"] == run.input_spec.to_dict()
    )
    assert data["source"]["manifest_sha256"] == run.manifest_sha256 and (out / "model.onnx").is_file()
    res = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), "--out", str(out)])
    assert res.exit_code == 1 and "not a training run folder" in str(res.exception)


def test_sdk_serving_modules_import_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, embsdk.embed, embsdk.serving.server, embsdk.serving.client, embsdk.serving.local, "
        "embsdk.serving.resolve, embsdk.serving.health; "
        "print(sorted(m for m in ('torch', 'tritonclient', 'onnxruntime', 'sqlalchemy', 'faiss', 'registry') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def test_in_process_runner_sees_a_re_export(tmp_path: Path, images: list[Path]) -> None:
    from embsdk.errors import InferenceError
    from embsdk.serving.local import LocalRunner
    from trainer.export import export_model

    batch = load_images(images, SPEC)
    export_model(make_tiny_model(0), tmp_path, input_spec=SPEC, parity_images=images[:4])
    first = LocalRunner(tmp_path / "model.onnx").run(batch)[1]
    export_model(make_tiny_model(1), tmp_path, input_spec=SPEC, parity_images=images[:4])
    second = LocalRunner(tmp_path / "model.onnx").run(batch)[1]
    assert not np.array_equal(first, second)
    from embsdk.serving import local

    path = str((tmp_path / "model.onnx").resolve())
    assert (
        len([k for k in local._SESSIONS if k[0] == path]) == 1
    )  # the re-exported file's old session was dropped
    np.testing.assert_array_equal(second, _run(tmp_path / "model.onnx", batch)[1])
    runner = LocalRunner(tmp_path / "model.onnx")
    with pytest.raises(InferenceError, match="float32"):
        runner.run(batch.astype(np.float64))
    with pytest.raises(InferenceError, match=r"does not match the model's \[N, 3, 32, 32\]"):
        runner.run(batch[:, :, :16, :16])


def test_exported_model_gets_the_umask_mode(tmp_path: Path, images: list[Path]) -> None:
    """model.onnx is written through a temp file: it must end 0644 under umask 022 (not mkstemp's 0600)."""
    import os
    import stat

    from trainer.export import export_model

    old = os.umask(0o022)
    try:
        export_model(make_tiny_model(1), tmp_path / "exp", input_spec=SPEC, parity_images=images[:2])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "exp" / "model.onnx").stat().st_mode) == 0o644
