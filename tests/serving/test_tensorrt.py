"""TensorRT: manifest compatibility checks (CPU), and the real FP16 build/verify on a GPU (marked gpu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embsdk.errors import EngineIncompatible

pytest.importorskip("torch")

HERE = {"gpu": "Tesla V100-SXM2-16GB", "compute_capability": "7.0", "tensorrt": "10.3.0", "cuda": "12.4"}


def test_matching_manifest_is_accepted() -> None:
    from trainer.tensorrt import check_compatibility

    check_compatibility(dict(HERE, plan="model.plan"), dict(HERE, cuda="12.6"))  # same CUDA major is fine


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("compute_capability", "8.0", "compute capability 8.0"),
        ("tensorrt", "10.5.0", "TensorRT 10.5.0"),
        ("cuda", "11.8", "CUDA 11.8"),
    ],
)
def test_mismatching_manifest_is_refused(field: str, value: str, message: str) -> None:
    from trainer.tensorrt import check_compatibility

    with pytest.raises(EngineIncompatible, match=message) as info:
        check_compatibility(dict(HERE, **{field: value}), HERE)
    assert "Rebuild it" in str(info.value)


def test_engine_without_manifest_is_refused(tmp_path: Path) -> None:
    from trainer.tensorrt import load_engine

    (tmp_path / "model.plan").write_bytes(b"not a plan")
    with pytest.raises(EngineIncompatible, match="no compatibility manifest"):
        load_engine(tmp_path / "model.plan")


@pytest.mark.gpu
def test_fp16_engine_build_and_verify(tiny_exports: list[Path], tmp_path: Path) -> None:
    import shutil

    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from trainer.tensorrt import verify

    export = tmp_path / "exp"
    shutil.copytree(tiny_exports[0], export)
    report = verify(export)
    assert (export / "model.plan").is_file() and (export / "model.plan.json").is_file()
    assert report["precision"] == "fp16" and report["input"]["max"][0] == 64
    assert report["bit_agreement"] >= 0.99 and report["mismatch_refused"]


def test_driver_cuda_must_cover_the_plan() -> None:
    from embsdk.serving.engines import check_compatibility

    env = {"gpu": HERE["gpu"], "compute_capability": "7.0", "tensorrt": "10.3.0", "cuda_driver": "12.2"}
    check_compatibility(HERE, env)  # driver 12.2 runs a CUDA 12.4 runtime plan's major
    with pytest.raises(EngineIncompatible, match="driver supports only 11.4"):
        check_compatibility(HERE, dict(env, cuda_driver="11.4"))


def test_server_refuses_a_repository_with_a_mismatched_engine(
    tiny_exports: list[Path], tmp_path: Path
) -> None:
    import json
    import shutil

    from embsdk.serving.engines import probe_gpu
    from embsdk.serving.server import TritonServer
    from triton_models.repository import ModelRepository

    export = tmp_path / "exp"
    shutil.copytree(tiny_exports[0], export)
    (export / "model.plan").write_bytes(b"\x00plan bytes built elsewhere")
    manifest = {**HERE, "compute_capability": "0.1", "gpu": "a GPU that does not exist", "plan": "model.plan"}
    (export / "model.plan.json").write_text(json.dumps(manifest))
    repo = ModelRepository(tmp_path / "repo")
    assert repo.add(export, generation="unified-v1", backend="tensorrt") == 1
    assert sorted(p.name for p in (repo.root / "unified" / "1").iterdir()) == [
        "export.json",
        "generation.json",
        "model.plan",
        "model.plan.json",
    ]
    server = TritonServer(repo.root, http_port=0, grpc_port=0)
    expected = "this machine has no GPU" if probe_gpu() is None else "compute capability 0.1"
    with pytest.raises(EngineIncompatible, match=expected):
        server.start()
    assert server.proc is None  # refused before anything was started
