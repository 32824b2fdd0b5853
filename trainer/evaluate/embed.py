"""Embed manifest rows with a model: decode in DataLoader workers, batch through the model, cache to npz.

Images go through THE shared eval preprocessing (:func:`embsdk.preprocess.load_image`). A row whose image
is missing or unreadable is not fatal: it is marked invalid, left out of evaluation, and counted.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsdk.preprocess import InputSpec, load_image

if TYPE_CHECKING:
    import torch

__all__ = [
    "ENGINES",
    "EmbeddedRows",
    "embed_paths",
    "load_cached_embeddings",
    "onnx_runner",
    "run_paths",
    "save_embeddings",
    "torch_runner",
]

ENGINES = ("auto", "onnxruntime", "torch")
ONNX_PARITY_TOL = 1e-3  # max |ORT - torch| on the first batch's features, relative to their scale

BatchFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class EmbeddedRows:
    """Float embeddings of some manifest rows (the scorer packs their codes: :func:`embsdk.codes.pack_codes`).

    Attributes:
        rows: manifest row numbers (N,).
        floats: float32 (N, D) LayerNorm-ed embeddings (zeros where ``valid`` is False).
        valid: bool (N,), False where the image could not be read.
        errors: row number → reason, for the invalid rows.
        images_per_second: throughput of the embedding pass (0 when loaded from cache).
    """

    rows: np.ndarray
    floats: np.ndarray
    valid: np.ndarray
    errors: dict[int, str]
    images_per_second: float = 0.0

    def lookup(self, rows: np.ndarray) -> np.ndarray:
        """Positions in this object of the given manifest rows (all must be present)."""
        pos = {int(r): i for i, r in enumerate(self.rows)}
        return np.array([pos[int(r)] for r in rows], dtype=np.int64)


class _ImageFiles:
    """Map-style dataset: index → (CHW float tensor, ok flag, error text)."""

    def __init__(self, paths: Sequence[Path], spec: InputSpec) -> None:
        self.paths, self.spec = list(paths), spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, bool, str]:
        import torch

        from embsdk.errors import ImageDecodeError

        try:
            return torch.from_numpy(load_image(self.paths[i], self.spec)), True, ""
        except ImageDecodeError as exc:
            s = self.spec.image_size
            return torch.zeros(3, s, s), False, str(exc)


def embed_paths(
    model: torch.nn.Module,
    paths: Sequence[Path],
    spec: InputSpec,
    *,
    batch_size: int = 32,
    workers: int = 2,
    desc: str = "embed",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Run *model* (images → float (N, D)) over image files.

    Args:
        model: maps a float (B, 3, S, S) batch to (B, D) embeddings; put in eval mode here.
        paths: image files.
        spec: the model's input contract (size, normalization).
        batch_size: images per forward pass.
        workers: DataLoader worker processes decoding images (0 = in this process).
        desc: progress-bar label.
        progress: show a tqdm bar (images/s).

    Returns:
        ``(floats (N, D) float32, valid (N,) bool, error text per image, images per second)``.
    """
    return run_paths(
        torch_runner(model), paths, spec, batch_size=batch_size, workers=workers, desc=desc, progress=progress
    )


def torch_runner(model: torch.nn.Module) -> BatchFn:
    """*model* in eval mode, channels_last, under inference mode, as a numpy batch → numpy function."""
    import torch

    # channels_last is about 1.6x faster for these convnets on CPU (measured at batch 32 on 2 cores)
    model.eval().to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return model(x).float().cpu().numpy()

    return run


def _weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_runner(
    module: torch.nn.Module, spec: InputSpec, *, cache_dir: Path, check: np.ndarray | None = None
) -> BatchFn | None:
    """*module* exported to ONNX (opset 17, dynamic batch) and run by ONNX Runtime on every CPU core.

    The export is cached in *cache_dir* under a hash of the weights and input size (exported once per
    backbone, then reused). With *check* (a preprocessed batch), ONNX Runtime's output is compared with
    PyTorch's on it; a model that does not export, or disagrees beyond ``ONNX_PARITY_TOL``, gives None
    (the caller falls back to PyTorch). onnxruntime not installed: None.
    """
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        return None
    import torch

    module = module.eval()
    s = spec.image_size
    path = cache_dir / f"{_weights_digest(module)[:24]}-{s}.onnx"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (torch.zeros(2, 3, s, s),),
                    str(tmp),
                    opset_version=17,
                    dynamo=False,
                    input_names=["image"],
                    output_names=["out"],
                    dynamic_axes={"image": {0: "batch"}, "out": {0: "batch"}},
                )
            os.replace(tmp, path)
        except Exception:  # noqa: BLE001 - any exporter failure: PyTorch does the work instead
            tmp.unlink(missing_ok=True)
            return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    # no busy-waiting between batches: the cores are shared with the workers decoding the next images
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a damaged cache file: PyTorch does the work instead
        path.unlink(missing_ok=True)
        return None

    def run(batch: np.ndarray) -> np.ndarray:
        return sess.run(["out"], {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    if check is not None and len(check):
        with torch.inference_mode():
            ref = module(torch.from_numpy(check)).float().numpy()
        got = run(check)
        scale = max(1.0, float(np.abs(ref).max()))
        if got.shape != ref.shape or not float(np.abs(got - ref).max()) <= ONNX_PARITY_TOL * scale:
            return None
    return run


def run_paths(
    fn: BatchFn,
    paths: Sequence[Path],
    spec: InputSpec,
    *,
    batch_size: int = 32,
    workers: int = 2,
    desc: str = "embed",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Decode *paths* in DataLoader workers and map each preprocessed batch through *fn*.

    Returns:
        ``(outputs (N, D) float32, valid (N,) bool, error text per image, images per second)``;
        rows of unreadable images are zeros and not valid.
    """
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    loader = DataLoader(
        _ImageFiles(paths, spec),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
    )
    outs, oks, errs = [], [], []
    start = time.perf_counter()
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for images, ok, err in loader:
            outs.append(np.asarray(fn(images.numpy()), dtype=np.float32))
            oks.append(ok.numpy())
            errs.extend(err)
            bar.update(len(images))
    elapsed = max(time.perf_counter() - start, 1e-9)
    floats = np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, 0), np.float32)
    valid = np.concatenate(oks).astype(bool) if oks else np.zeros(0, bool)
    floats[~valid] = 0.0
    return floats, valid, errs, len(paths) / elapsed


def save_embeddings(path: Path, embedded: EmbeddedRows, *, key: str) -> None:
    """Write *embedded* to an npz cache (atomically), tagged with *key* (model + manifest + spec)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    err_rows = np.array(sorted(embedded.errors), dtype=np.int64)
    err_text = np.array([embedded.errors[int(r)] for r in err_rows], dtype=str)
    np.savez_compressed(
        tmp,
        key=np.array(key),
        rows=embedded.rows,
        floats=embedded.floats,
        valid=embedded.valid,
        err_rows=err_rows,
        err_text=err_text,
    )
    tmp.replace(path)


def load_cached_embeddings(path: Path, *, key: str, rows: np.ndarray) -> EmbeddedRows | None:
    """Return the cached embeddings if *path* holds the same *key* and covers *rows*; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            cached = EmbeddedRows(
                rows=data["rows"],
                floats=data["floats"],
                valid=data["valid"],
                errors={int(r): str(t) for r, t in zip(data["err_rows"], data["err_text"], strict=True)},
            )
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache: recompute
    if not set(np.asarray(rows).tolist()) <= set(cached.rows.tolist()):
        return None
    return cached
