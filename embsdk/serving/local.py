"""In-process inference: run a generation's ONNX graph with ONNX Runtime (same outputs as Triton)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import InferenceError, MissingExtraError
from embsdk.spec import TENSOR_NAMES, EmbeddingSpec

__all__ = ["LocalRunner"]

_SESSIONS: dict[tuple[str, int, int, int], Any] = {}
_LOCK = threading.Lock()


def _session(path: Path, threads: int) -> Any:
    stat = path.stat()  # a re-export to the same path must not reuse the old session
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, threads)
    with _LOCK:
        if key not in _SESSIONS:
            for stale in [k for k in _SESSIONS if k[0] == key[0] and k[1:3] != key[1:3]]:
                del _SESSIONS[stale]  # the file was re-exported: its old session is never asked for again
            try:
                import onnxruntime as ort
            except ModuleNotFoundError:
                raise MissingExtraError("onnxruntime", "serve") from None
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            try:
                _SESSIONS[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise InferenceError(f"Cannot load ONNX model {path}: {exc}") from None
        return _SESSIONS[key]


class LocalRunner:
    """Runs an exported ``model.onnx`` (input ``image``, outputs ``embedding`` and ``code``).

    Args:
        onnx_path: the model file.
        threads: ONNX Runtime intra-op threads (0: its default, all cores).
        spec: the generation's :class:`~embsdk.spec.EmbeddingSpec` (or its dict); its tensor names are the
            graph's. Default: the standard names (:data:`embsdk.spec.INPUT_NAME`, ...).

    Example:
        >>> emb, code = LocalRunner("exports/tiny/model.onnx").run(batch)   # doctest: +SKIP
    """

    def __init__(
        self, onnx_path: str | Path, *, threads: int = 0, spec: EmbeddingSpec | dict[str, Any] | None = None
    ) -> None:
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise InferenceError(f"ONNX model {self.path} does not exist.")
        names = EmbeddingSpec.coerce(spec).tensor_names if spec is not None else TENSOR_NAMES
        self.input_name, self.output_names = names[0], list(names[1:])
        self.session = _session(self.path, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if self.input_name not in inputs:
            raise InferenceError(
                f"ONNX model {self.path} has inputs {sorted(inputs)}, not {self.input_name!r} (see embsdk.spec)."
            )
        self.input_shape = list(inputs[self.input_name].shape)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` float32 (N, 3, S, S) → ``(embedding float32 (N, D), code uint8 (N, ceil(D/8)))``.

        Raises:
            InferenceError: wrong dtype or shape, or ONNX Runtime failed.
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise InferenceError(f"Input must be a float32 array, got {got}.")
        want = self.input_shape[1:]
        if batch.ndim != 4 or any(isinstance(w, int) and w != g for w, g in zip(want, batch.shape[1:])):
            raise InferenceError(
                f"Input shape {list(batch.shape)} does not match the model's [N, {', '.join(map(str, want))}]."
            )
        try:
            emb, code = self.session.run(self.output_names, {self.input_name: batch})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own types never escape
            raise InferenceError(f"ONNX Runtime failed: {exc}") from None
        return emb, code
