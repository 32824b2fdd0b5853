"""Float re-ranking of Hamming candidates: cosine similarity of the stored float16 vectors."""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_rerank"]


def cosine_rerank(
    query: np.ndarray, candidates: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Order *candidates* (ids) by cosine similarity of *vectors* (their rows) to *query* → (ids, scores), top *k*.

    Ties keep the incoming (Hamming) order.
    """
    q = np.asarray(query, np.float32).reshape(-1)
    v = np.asarray(vectors, np.float32)
    qn = q / max(float(np.linalg.norm(q)), 1e-12)
    vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    scores = vn @ qn
    order = np.argsort(-scores, kind="stable")[:k]
    return np.asarray(candidates)[order], scores[order]
