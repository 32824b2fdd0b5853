"""Export a trained embedding model to ONNX with the bit packing inside the graph, and check parity.

The exported graph has one input and two outputs:

* ``image``: float32 ``(N, 3, S, S)``, preprocessed by :mod:`embsdk.preprocess` (dynamic batch);
* ``embedding``: float32 ``(N, D)``, the LayerNorm-ed float embedding;
* ``code``: uint8 ``(N, ceil(D / 8))``, the packed bits in :data:`embsdk.codes.BIT_ORDER`
  (``numpy.packbits`` big-endian, bit = value > 0), so every consumer gets identical bytes.

The export folder holds ``model.onnx`` and ``export.json`` (input and embedding specs, parity figures,
sha256 of the model, versions of the tools). Parity is checked against PyTorch on real images: float
outputs within :data:`FLOAT_TOL` and at least :data:`BIT_AGREEMENT_MIN` of the bits equal; otherwise
:class:`~embsdk.errors.ParityError` and nothing is written.

Example:
    >>> info = export_run("runs/tiny", "exports/tiny")          # doctest: +SKIP
    >>> info["parity"]["max_abs_diff"], info["parity"]["bit_agreement"]   # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embsdk._fileio import current_umask, write_json_atomic
from embsdk.codes import THRESHOLD, pack_codes
from embsdk.errors import ExportError, ParityError
from embsdk.preprocess import InputSpec, load_images
from embsdk.spec import INPUT_NAME, OUTPUT_NAMES, EmbeddingSpec
from trainer.export_format import read_export, sha256_file

__all__ = [
    "BIT_AGREEMENT_MIN",
    "FLOAT_TOL",
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAMES",
    "PackedCodeGraph",
    "check_parity",
    "export_model",
    "export_run",
    "read_export",
    "sha256_file",
]

OPSET = 17
FLOAT_TOL = 1e-4
BIT_AGREEMENT_MIN = 0.999
EXPORT_FORMAT = 1
_PARITY_IMAGES = 16


class PackedCodeGraph(nn.Module):
    """Wraps an embedding model so that it also returns the packed code, computed in the graph.

    ``code[:, j] = sum_k bit[8j + k] << (7 - k)`` with ``bit = embedding > 0``; dimensions are padded
    with zero bits up to a multiple of 8, exactly like ``numpy.packbits``.
    """

    def __init__(self, model: nn.Module, dim: int) -> None:
        super().__init__()
        self.model = model
        self.dim = dim
        self.pad = (-dim) % 8
        self.register_buffer("bit_weights", torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model(image)
        bits = (embedding > THRESHOLD).to(torch.int32)
        if self.pad:
            bits = nn.functional.pad(bits, (0, self.pad))
        code = (bits.reshape(-1, (self.dim + self.pad) // 8, 8) * self.bit_weights).sum(-1).to(torch.uint8)
        return embedding, code


def _ort_session(onnx_path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def check_parity(
    model: nn.Module, onnx_path: str | Path, batch: np.ndarray, spec: EmbeddingSpec | None = None
) -> dict[str, Any]:
    """Compare the ONNX model with PyTorch on ``batch`` (N, 3, S, S) float32.

    ``spec`` names the graph's tensors (default: the standard names of :mod:`embsdk.spec`).

    Returns:
        ``max_abs_diff`` (float outputs), ``bit_agreement`` (ONNX code bits vs PyTorch signs),
        ``code_consistent`` (ONNX ``code`` == packbits(ONNX ``embedding`` > 0)), ``n_images`` and ``passed``.
    """
    sess = _ort_session(Path(onnx_path))
    inp, outs = (spec.input_name, list(spec.output_names)) if spec else (INPUT_NAME, list(OUTPUT_NAMES))
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(batch)).float().numpy()
    emb, code = sess.run(outs, {inp: batch})
    single = sess.run(outs, {inp: batch[:1]})  # the batch axis really is dynamic
    if emb.shape != ref.shape or code.shape != (len(batch), (ref.shape[1] + 7) // 8):
        raise ParityError(f"ONNX output shapes {emb.shape}, {code.shape} do not match PyTorch {ref.shape}.")
    ref_bits = np.unpackbits(pack_codes(ref), axis=1)
    got_bits = np.unpackbits(code, axis=1)
    report = {
        "n_images": len(batch),
        "max_abs_diff": float(np.abs(emb - ref).max()),
        "bit_agreement": float((ref_bits == got_bits).mean()),
        "code_consistent": bool(np.array_equal(code, pack_codes(emb))),
        "batch1_max_abs_diff": float(np.abs(single[0] - emb[:1]).max()),
        "float_tol": FLOAT_TOL,
        "bit_agreement_min": BIT_AGREEMENT_MIN,
    }
    report["finite"] = bool(np.isfinite(ref).all() and np.isfinite(emb).all())
    report["passed"] = bool(
        report["finite"]
        and report["max_abs_diff"] <= FLOAT_TOL
        and report["bit_agreement"] >= BIT_AGREEMENT_MIN
        and report["code_consistent"]
        and report["batch1_max_abs_diff"] <= FLOAT_TOL
    )
    return report


def _parity_failure(report: dict[str, Any]) -> str:
    why = []
    if not report["finite"]:
        why.append("the model's outputs are not finite (NaN/inf: diverged or corrupt weights)")
    if report["max_abs_diff"] > FLOAT_TOL:
        why.append(f"float max |diff| {report['max_abs_diff']:.3g} > {FLOAT_TOL:g}")
    if report["bit_agreement"] < BIT_AGREEMENT_MIN:
        why.append(f"bits agree on {report['bit_agreement']:.4%} < {BIT_AGREEMENT_MIN:.1%}")
    if not report["code_consistent"]:
        why.append("the graph's code is not packbits(embedding > 0)")
    if report["batch1_max_abs_diff"] > FLOAT_TOL:
        why.append(f"batch-1 output differs from the batched one by {report['batch1_max_abs_diff']:.3g}")
    return "; ".join(why)


def export_model(
    model: nn.Module,
    out_dir: str | Path,
    *,
    input_spec: InputSpec,
    parity_images: Sequence[str | Path | np.ndarray],
    embedding_spec: EmbeddingSpec | Mapping[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``model`` to ``out_dir/model.onnx`` (+ ``export.json``) and check parity on real images.

    Args:
        model: maps float (N, 3, S, S) to the LayerNorm-ed embedding (N, D).
        out_dir: folder to write; created if needed. Files appear atomically, ``export.json`` last.
        input_spec: preprocessing used for the parity images (and recorded for serving).
        parity_images: image files (or preprocessed arrays) to compare PyTorch and ONNX Runtime on.
        embedding_spec: the run's :class:`~embsdk.spec.EmbeddingSpec` (or its dict); its ``dim`` must be the
            model's. Default: ``EmbeddingSpec(bits=D)`` for the model's output dimension D. The spec is built
            once here and recorded as ``export.json``'s ``embedding_spec`` (its tensor names name the graph's).
        source: where the model came from (run folder, run id), recorded as is.

    Returns:
        The ``export.json`` content.

    Raises:
        ExportError: the model cannot be exported, the ONNX checker rejects it, or the spec does not
            describe the model (another dim, a float dtype other than float32).
        InvalidEmbeddingSpec: *embedding_spec* breaks the contract.
        ParityError: ONNX Runtime disagrees with PyTorch beyond tolerance (nothing is written).
        ImageDecodeError: a parity image cannot be read.
    """
    import onnx
    import onnxruntime

    if not parity_images:
        raise ExportError("No images to check parity on; pass at least one real image.")
    batch = load_images(list(parity_images), input_spec)
    model = model.eval().cpu()
    with torch.no_grad():
        dim = int(model(torch.from_numpy(batch[:1])).shape[1])
    spec = _export_spec(embedding_spec, dim)
    graph = PackedCodeGraph(model, dim).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.", suffix=".onnx.tmp", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(
        0o666 & ~current_umask()
    )  # the published model gets the umask's normal mode, not mkstemp's 0600
    try:
        example = torch.from_numpy(batch[: min(2, len(batch))])
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's constant-folding chatter
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph,
                    (example,),
                    str(tmp),
                    opset_version=OPSET,
                    dynamo=False,
                    input_names=[spec.input_name],
                    output_names=list(spec.output_names),
                    dynamic_axes={name: {0: "batch"} for name in spec.tensor_names},
                )
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as exc:  # torch/onnx raise many types; one typed error at the boundary
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
        parity = check_parity(model, tmp, batch, spec)
        if not parity["passed"]:
            raise ParityError(
                f"Parity check failed on {parity['n_images']} images: {_parity_failure(parity)}."
            )
        info: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {"file": "model.onnx", "sha256": sha256_file(tmp), "bytes": tmp.stat().st_size},
            "opset": OPSET,
            "inputs": [
                {
                    "name": spec.input_name,
                    "dtype": "float32",
                    "shape": [-1, 3, input_spec.image_size, input_spec.image_size],
                }
            ],
            "outputs": [
                {"name": spec.embedding_output, "dtype": spec.float_dtype, "shape": [-1, spec.dim]},
                {"name": spec.code_output, "dtype": "uint8", "shape": [-1, spec.code_bytes]},
            ],
            "embedding_spec": spec.to_dict(),
            "input_spec": input_spec.to_dict(),
            "parity": parity,
            "source": source or {},
            "versions": {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        }
        os.replace(tmp, out / "model.onnx")
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(out / "export.json", info)
    return info


def _export_spec(given: EmbeddingSpec | Mapping[str, Any] | None, dim: int) -> EmbeddingSpec:
    """The one :class:`EmbeddingSpec` of an export: *given* (checked against the model) or the default for *dim*."""
    if dim % 8:
        raise ExportError(
            f"The model outputs {dim} dimensions, one bit each; codes are whole bytes, so the embedding "
            "dim must be a positive multiple of 8."
        )
    if given is None:
        return EmbeddingSpec(bits=dim, dim=dim)
    spec = EmbeddingSpec.coerce(given)
    if spec.dim != dim or spec.bits != dim:
        raise ExportError(
            f"The embedding spec says dim {spec.dim} / bits {spec.bits}, but the model outputs {dim} dimensions "
            "(one bit each); export the run the spec belongs to."
        )
    if spec.float_dtype != "float32" or spec.threshold != THRESHOLD:
        raise ExportError(
            f"The exported graph outputs float32 and packs value > {THRESHOLD}; the spec says "
            f"{spec.float_dtype}, threshold {spec.threshold}."
        )
    return spec


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    limit: int = _PARITY_IMAGES,
) -> dict[str, Any]:
    """Export a training run's latest model (see :func:`export_model`).

    Args:
        run_dir: the ``emb train`` run folder.
        out_dir: export folder to write.
        images: parity images; default: up to ``limit`` images listed in the run's manifest.
        limit: how many manifest images to use when ``images`` is not given.

    Raises:
        RunError: the run folder cannot be loaded.
        ExportError, ParityError: see :func:`export_model`.
    """
    from trainer.run import load_model

    run = Path(run_dir)
    model, run_info = load_model(run)
    if images is None:
        images = _manifest_images(run_info.manifest_path, limit)
    return export_model(
        model,
        out_dir,
        input_spec=run_info.input_spec,
        parity_images=list(images),
        embedding_spec=EmbeddingSpec.from_dict(run_info.embedding_spec),
        source={
            "run": str(run.resolve()),
            "step": run_info.step,
            "checkpoint": str(run_info.checkpoint or ""),
            "manifest_sha256": run_info.manifest_sha256,
            "code_version": run_info.code_version,
        },
    )


def _manifest_images(manifest: str, limit: int) -> list[Path]:
    """Up to ``limit`` existing image paths from the run's manifest (evaluation splits first)."""
    if not manifest or not Path(manifest).is_file():
        raise ExportError("The run records no readable manifest to take parity images from; pass --images.")
    import pandas as pd

    path = Path(manifest)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "split" in frame.columns:
        order = frame["split"].map({"test": 0, "val": 1}).fillna(2)
        frame = frame.assign(_o=order).sort_values("_o", kind="stable")
    found: list[Path] = []
    for value in frame["image"]:
        p = Path(str(value))
        p = p if p.is_absolute() else path.parent / p
        if p.is_file():
            found.append(p)
        if len(found) >= limit:
            break
    if not found:
        raise ExportError(f"None of the images in {path} exist; pass --images.")
    return found
