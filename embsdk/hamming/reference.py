"""Numpy Hamming distances and search: the one reference (exact, block-wise, slow).

Every other Hamming computation is tested against (or delegates to) :func:`hamming_matrix`: faiss results, the
evaluator's ranking (``trainer.evaluate.metrics``), ``embsdk.codes.hamming`` and ``Embedding.hamming``. numpy
only; importing this module never imports faiss.
"""

from __future__ import annotations

import numpy as np

__all__ = ["POPCOUNT", "hamming_distance", "hamming_matrix", "hamming_topk"]

POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)


def hamming_matrix(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances (int32, shape (Q, N)) between packed uint8 codes, via a byte popcount table."""
    q = np.atleast_2d(np.asarray(queries, np.uint8))
    c = np.atleast_2d(np.asarray(codes, np.uint8))
    return POPCOUNT[q[:, None, :] ^ c[None, :, :]].sum(-1, dtype=np.int32)


def hamming_distance(a: np.ndarray | bytes, b: np.ndarray | bytes) -> int:
    """The Hamming distance between two packed codes of the same length (1-D uint8 or ``bytes``).

    Raises:
        ValueError: the codes have different byte lengths.
    """
    x = np.frombuffer(a, np.uint8) if isinstance(a, bytes) else np.asarray(a, np.uint8).ravel()
    y = np.frombuffer(b, np.uint8) if isinstance(b, bytes) else np.asarray(b, np.uint8).ravel()
    if x.shape != y.shape:
        raise ValueError(f"codes of {x.size} and {y.size} bytes do not compare")
    return int(hamming_matrix(x, y)[0, 0])


def hamming_topk(
    queries: np.ndarray, codes: np.ndarray, k: int, *, block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-*k* by Hamming distance → (distances int32 (Q, k), positions int64 (Q, k)).

    Ties are broken by position (smaller first); rows beyond ``len(codes)`` are filled with -1.
    """
    q = np.atleast_2d(np.asarray(queries, np.uint8))
    n = len(codes)
    kk = min(k, n)
    best_d = np.full((q.shape[0], 0), 0, np.int32)
    best_i = np.full((q.shape[0], 0), 0, np.int64)
    for start in range(0, n, block):
        d = hamming_matrix(q, codes[start : start + block])
        cand_d = np.concatenate([best_d, d], axis=1)
        cand_i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(start, start + d.shape[1]), d.shape)], axis=1
        )
        order = (
            np.lexsort((cand_i, cand_d), axis=-1)[:, :kk]
            if cand_d.size
            else np.zeros((q.shape[0], 0), np.int64)
        )
        best_d = np.take_along_axis(cand_d, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    if kk < k:
        best_d = np.pad(best_d, ((0, 0), (0, k - kk)), constant_values=-1)
        best_i = np.pad(best_i, ((0, 0), (0, k - kk)), constant_values=-1)
    return best_d, best_i
