"""TensorRT: an FP16 engine from the exported ONNX, with a compatibility manifest beside it.

A TensorRT plan only runs on the GPU architecture and TensorRT version it was built with. Every
``model.plan`` gets ``model.plan.json``: GPU name and compute capability, TensorRT and CUDA versions,
precision, the input's batch profile, and the sha256 of the plan and of the ONNX it came from.
:func:`load_engine` refuses a plan whose manifest does not match this machine with
:class:`~embsdk.errors.EngineIncompatible` (a clear message instead of a crash in deserialization).

Needs CUDA and the ``tensorrt`` package (``pip install 'embsdk[gpu]'``); elsewhere the functions raise
:class:`~embsdk.errors.MissingExtraError` and the tests marked ``gpu`` skip. One command verifies the
whole path on a GPU machine::

    .venv/bin/python -m trainer.tensorrt --check [EXPORT_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from embsdk._fileio import sha256_file, write_json_atomic
from embsdk.errors import EngineIncompatible, ExportError, MissingExtraError
from embsdk.serving.engines import check_compatibility
from embsdk.spec import CODE_OUTPUT, EMBEDDING_OUTPUT, INPUT_NAME, OUTPUT_NAMES

__all__ = [
    "MANIFEST_SUFFIX",
    "build_engine",
    "check_compatibility",
    "gpu_environment",
    "load_engine",
    "run_engine",
    "verify",
]

MANIFEST_SUFFIX = ".json"
_FORMAT = 1


def gpu_environment() -> dict[str, Any]:
    """This machine's GPU, TensorRT and CUDA versions (what a plan must match).

    Raises:
        MissingExtraError: no CUDA device, or tensorrt is not installed.
    """
    import torch

    try:
        import tensorrt as trt
    except ModuleNotFoundError:
        raise MissingExtraError("tensorrt", "gpu") from None
    if not torch.cuda.is_available():
        raise MissingExtraError("a CUDA GPU (torch.cuda.is_available() is False)", "gpu")
    major, minor = torch.cuda.get_device_capability(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": f"{major}.{minor}",
        "tensorrt": trt.__version__,
        "cuda": torch.version.cuda,
    }


def build_engine(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 64,
    fp16: bool = True,
    workspace_gib: float = 2.0,
) -> dict[str, Any]:
    """Build ``out_dir/model.plan`` (FP16 by default) and its manifest ``model.plan.json``.

    Returns:
        The manifest.

    Raises:
        MissingExtraError: no GPU or no tensorrt.
        ExportError: TensorRT cannot parse or build the ONNX graph.
    """
    env = gpu_environment()
    import tensorrt as trt

    onnx_path, out = Path(onnx_path), Path(out_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    inp = network.get_input(0)
    chw = tuple(int(d) for d in inp.shape[1:])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shapes = {"min": (min_batch, *chw), "opt": (opt_batch, *chw), "max": (max_batch, *chw)}
    profile.set_shape(inp.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(
            f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)."
        )
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "model.plan"
    with tempfile.NamedTemporaryFile(dir=out, prefix=".model.plan.", delete=False) as f:
        f.write(bytes(plan))
    Path(f.name).replace(plan_path)
    manifest = {
        "format": _FORMAT,
        **env,
        "precision": "fp16" if fp16 else "fp32",
        "plan": plan_path.name,
        "plan_sha256": sha256_file(plan_path),
        "onnx_sha256": sha256_file(onnx_path),
        "input": {"name": inp.name, "dtype": "float32", **{k: list(v) for k, v in shapes.items()}},
        "outputs": [network.get_output(i).name for i in range(network.num_outputs)],
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(out / f"model.plan{MANIFEST_SUFFIX}", manifest)
    return manifest


def load_engine(plan_path: str | Path) -> Any:
    """Deserialize a plan after checking its manifest against this machine.

    Raises:
        EngineIncompatible: the manifest is missing, the plan's bytes changed, or it was built elsewhere.
    """
    plan_path = Path(plan_path)
    manifest_path = plan_path.with_name(plan_path.name + MANIFEST_SUFFIX)
    if not manifest_path.is_file():
        raise EngineIncompatible(
            f"{plan_path} has no compatibility manifest ({manifest_path.name}); rebuild it."
        )
    manifest = json.loads(manifest_path.read_text())
    if sha256_file(plan_path) != manifest.get("plan_sha256"):
        raise EngineIncompatible(
            f"{plan_path} does not match the sha256 in {manifest_path.name}; rebuild it."
        )
    check_compatibility(manifest, gpu_environment())
    import tensorrt as trt

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise EngineIncompatible(f"TensorRT could not deserialize {plan_path}.")
    return engine


def run_engine(engine: Any, batch: Any) -> dict[str, Any]:
    """Run a float32 numpy batch (N, 3, S, S) → ``{"embedding": ..., "code": ...}`` as numpy arrays."""
    import tensorrt as trt
    import torch

    context = engine.create_execution_context()
    x = torch.from_numpy(batch).cuda().contiguous()
    outputs: dict[str, torch.Tensor] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, tuple(x.shape))
            context.set_tensor_address(name, x.data_ptr())
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = {
                trt.float32: torch.float32,
                trt.float16: torch.float16,
                trt.uint8: torch.uint8,
                trt.int32: torch.int32,
            }[engine.get_tensor_dtype(name)]
            outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ExportError("TensorRT execution failed.")
    stream.synchronize()
    return {k: v.cpu().numpy() for k, v in outputs.items()}


def verify(export_dir: str | Path) -> dict[str, Any]:
    """Build the FP16 engine of an export, load it (manifest checked), and compare it with ONNX Runtime.

    Returns:
        The manifest plus ``max_abs_diff`` (float) and ``bit_agreement`` vs ONNX Runtime, and the result of
        loading a plan whose manifest claims another GPU (must be :class:`EngineIncompatible`).
    """
    import numpy as np
    import onnxruntime as ort

    export_dir = Path(export_dir)
    manifest = build_engine(export_dir / "model.onnx", export_dir)
    engine = load_engine(export_dir / "model.plan")
    size = manifest["input"]["opt"][1:]
    batch = np.random.default_rng(0).normal(size=(8, *size)).astype(np.float32)
    got = run_engine(engine, batch)
    sess = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    emb, code = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
    report = {
        **manifest,
        "max_abs_diff": float(np.abs(got[EMBEDDING_OUTPUT].astype(np.float32) - emb).max()),
        "bit_agreement": float(
            (np.unpackbits(got[CODE_OUTPUT], axis=1) == np.unpackbits(code, axis=1)).mean()
        ),
    }
    fake = dict(manifest, compute_capability="1.0", gpu="imaginary GPU")
    try:
        check_compatibility(fake, gpu_environment())
        report["mismatch_refused"] = False
    except EngineIncompatible as exc:
        report["mismatch_refused"], report["mismatch_message"] = True, str(exc)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer.tensorrt [--check] [EXPORT_DIR]``: build (and with --check, verify) an engine."""
    ap = argparse.ArgumentParser(prog="python -m trainer.tensorrt", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "export_dir",
        nargs="?",
        help="an `emb export` folder (default with --check: a tiny model exported to a temp dir)",
    )
    ap.add_argument(
        "--check", action="store_true", help="build, load and compare with ONNX Runtime; print JSON"
    )
    args = ap.parse_args(argv)
    try:
        gpu_environment()
    except MissingExtraError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 2
    export_dir = args.export_dir
    if export_dir is None:
        if not args.check:
            ap.error("EXPORT_DIR is required without --check")
        export_dir = _tiny_export(Path(tempfile.mkdtemp(prefix="emb-trt-")))
    report = verify(export_dir) if args.check else build_engine(Path(export_dir) / "model.onnx", export_dir)
    print(json.dumps(report, indent=2))
    return 0 if report.get("mismatch_refused", True) and report.get("bit_agreement", 1.0) >= 0.99 else 1


def _tiny_export(root: Path) -> Path:
    """Export a small random CNN (for --check without an export folder)."""
    import numpy as np
    import torch
    from torch import nn

    from embsdk.preprocess import InputSpec
    from trainer.export import export_model

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.LayerNorm(128, elementwise_affine=False),
    )
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    export_model(model, root, input_spec=InputSpec(image_size=64), parity_images=pixels)
    return root


if __name__ == "__main__":
    sys.exit(main())
