"""The per-batch work of a backfill: decode images, embed them, keep the failures. Used by every engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import ImageDecodeError, InferenceError
from embsdk.preprocess import InputSpec, load_image

__all__ = ["BatchEmbedder", "EmbeddedBatch", "EmbedderConfig"]


@dataclass(frozen=True)
class EmbedderConfig:
    """Everything a worker needs to embed (picklable: Ray ships it to its workers)."""

    generation: str
    family: str
    input_spec: dict[str, Any]
    bits: int
    dim: int
    onnx_path: str | None = None
    url: str | None = None
    protocol: str = "http"
    keep_vectors: bool = True
    decode_threads: int = 2
    ort_threads: int = 0


@dataclass
class EmbeddedBatch:
    """Embedded rows of one batch, plus the images that could not be read."""

    ids: np.ndarray
    codes: np.ndarray
    vectors: np.ndarray | None
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (id, path, reason)


class BatchEmbedder:
    """Callable: ``(ids, paths) -> EmbeddedBatch``. Unreadable images are skipped and reported, never fatal."""

    def __init__(self, config: EmbedderConfig) -> None:
        self.config = config
        self.spec = InputSpec.from_dict(config.input_spec)
        self._pool = ThreadPoolExecutor(max_workers=max(1, config.decode_threads))
        if config.url:
            from embsdk.serving.client import TritonClient

            self._client: Any = TritonClient(config.url, protocol=config.protocol)  # type: ignore[arg-type]
            self._number = self._client.version_for(config.family, config.generation)
            self._run = lambda batch: self._client.infer(config.family, self._number, batch)
        else:
            from embsdk.serving.local import LocalRunner

            if not config.onnx_path:
                raise InferenceError(
                    f"Generation {config.generation!r}: no ONNX model path; pass a Triton url "
                    "(--url) or publish the generation with its ONNX artifact."
                )
            self._client = None
            self._run = LocalRunner(Path(config.onnx_path), threads=config.ort_threads).run

    def _decode_one(self, path: str) -> np.ndarray | str:
        try:
            return load_image(path, self.spec)
        except ImageDecodeError as exc:
            return exc.reason

    def decode(
        self, ids: np.ndarray, paths: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None, list[tuple[int, str, str]]]:
        """Decode and preprocess a batch → (ids that decoded, float32 (n, 3, S, S) or None, failures)."""
        decoded = list(self._pool.map(self._decode_one, paths))
        ok = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
        failed = [
            (int(ids[i]), paths[i], str(d)) for i, d in enumerate(decoded) if not isinstance(d, np.ndarray)
        ]
        pixels = np.stack([decoded[i] for i in ok]) if ok else None
        return np.asarray(ids, dtype=np.int64)[ok], pixels, failed

    def infer(
        self, ids: np.ndarray, pixels: np.ndarray | None, failed: list[tuple[int, str, str]]
    ) -> EmbeddedBatch:
        """Run the model on decoded pixels → codes (and float16 vectors)."""
        if pixels is None:
            nbytes = (self.config.bits + 7) // 8
            vec = np.zeros((0, self.config.dim), np.float16) if self.config.keep_vectors else None
            return EmbeddedBatch(np.zeros(0, np.int64), np.zeros((0, nbytes), np.uint8), vec, failed)
        emb, code = self._run(pixels)
        vectors = emb.astype(np.float16) if self.config.keep_vectors else None
        return EmbeddedBatch(ids, code.astype(np.uint8), vectors, failed)

    def __call__(self, ids: np.ndarray, paths: list[str]) -> EmbeddedBatch:
        return self.infer(*self.decode(ids, paths))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self._client is not None:
            self._client.close()
