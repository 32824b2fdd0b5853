"""Retrieval metrics, exact and numpy-only: rank a gallery for each query, then score the ranking.

Ranking:
    * float embeddings by cosine similarity (rows are L2-normalized here, highest similarity first);
    * binary codes (packed uint8, :mod:`embsdk.codes` bit order) by Hamming distance (smallest first).

Ties are broken deterministically: a *stable* sort on the distance (``-cosine`` for floats), so among
gallery items at the same distance the one with the lower gallery index ranks first. Binary codes tie
often (a 256-bit code has only 257 possible distances), so this rule matters; it is neither optimistic
nor pessimistic about the correct items.

Metrics (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020, and Zhai et al., KDD 2019):
    * ``R@K``: fraction of queries with at least one correct item in the top K (the paper's recall@K);
    * ``P@K``: mean over queries of (correct items in the top K) / K;
    * ``mAP@R``: with R = the number of gallery items of the query's class,
      ``mean over queries of (1/R) * sum_{i<=R} precision@i * correct(i)``.
Queries whose class has no item in the gallery cannot be answered; they are left out of every metric
and counted in ``queries_without_match``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from embsdk.hamming.reference import hamming_matrix as _hamming_block

__all__ = [
    "DEFAULT_KS",
    "Metric",
    "hamming_matrix",
    "match_matrix",
    "rank_cosine",
    "rank_gallery",
    "rank_hamming",
    "recall_curve",
    "retrieval_metrics",
]

Metric = Literal["cosine", "hamming"]
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
_CHUNK = 256  # queries per block, bounds memory at O(chunk * gallery * bytes)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def hamming_matrix(query_codes: np.ndarray, gallery_codes: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes (Q, B) and (G, B) → int32 (Q, G), in query blocks.

    Each block goes through :func:`embsdk.hamming.reference.hamming_matrix` (a byte popcount table).

    Raises:
        ValueError: the two code arrays have different byte lengths.
    """
    q = np.atleast_2d(np.asarray(query_codes, dtype=np.uint8))
    g = np.atleast_2d(np.asarray(gallery_codes, dtype=np.uint8))
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query codes have {q.shape[1]} bytes but gallery codes have {g.shape[1]}")
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.int32)
    for start in range(0, q.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _hamming_block(q[start : start + _CHUNK], g)
    return out


def rank_cosine(query: np.ndarray, gallery: np.ndarray, *, depth: int | None = None) -> np.ndarray:
    """Gallery indices (Q, depth) ordered by decreasing cosine similarity; ties by gallery index."""
    sims = _l2_normalize(query) @ _l2_normalize(gallery).T
    return _stable_topk(-sims, depth)


def rank_hamming(
    query_codes: np.ndarray, gallery_codes: np.ndarray, *, depth: int | None = None
) -> np.ndarray:
    """Gallery indices (Q, depth) ordered by increasing Hamming distance; ties by gallery index."""
    return _stable_topk(hamming_matrix(query_codes, gallery_codes), depth)


def rank_gallery(
    query: np.ndarray, gallery: np.ndarray, metric: Metric, *, depth: int | None = None
) -> np.ndarray:
    """Rank the gallery for each query with *metric* (``"cosine"`` on floats, ``"hamming"`` on packed codes).

    Args:
        query: (Q, D) float embeddings or (Q, B) packed uint8 codes.
        gallery: (G, D) or (G, B), same kind as *query*.
        metric: ``"cosine"`` or ``"hamming"``.
        depth: keep only the first *depth* ranks (default: the whole gallery).

    Returns:
        int64 array (Q, depth) of gallery indices, best first.

    Example:
        >>> rank_gallery(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.1]]), "cosine").tolist()
        [[1, 0]]
    """
    if metric == "cosine":
        return rank_cosine(query, gallery, depth=depth)
    if metric == "hamming":
        return rank_hamming(query, gallery, depth=depth)
    raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'hamming'")


def _stable_topk(dist: np.ndarray, depth: int | None) -> np.ndarray:
    depth = dist.shape[1] if depth is None else min(depth, dist.shape[1])
    return np.argsort(dist, axis=1, kind="stable")[:, :depth].astype(np.int64)


def match_matrix(
    ranked: np.ndarray, query_labels: Sequence[object], gallery_labels: Sequence[object]
) -> np.ndarray:
    """Bool (Q, depth): whether the item at each rank has the query's label."""
    q = np.asarray(query_labels, dtype=object)
    g = np.asarray(gallery_labels, dtype=object)
    return g[ranked] == q[:, None]


def retrieval_metrics(
    ranked: np.ndarray,
    query_labels: Sequence[object],
    gallery_labels: Sequence[object],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    precision_at: int = 20,
) -> dict[str, float]:
    """Score a full ranking: ``R@K`` for each K, ``P@<precision_at>``, ``mAP@R``.

    Args:
        ranked: (Q, G) gallery indices best first (from :func:`rank_gallery`, full depth).
        query_labels: the Q query labels.
        gallery_labels: the G gallery labels.
        ks: the K values of recall@K.
        precision_at: K of precision@K (divided by K even if the gallery is smaller).

    Returns:
        ``{"R@1": ..., "R@5": ..., "P@20": ..., "mAP@R": ..., "queries": n, "queries_without_match": m}``;
        metrics are NaN when no query can be answered.

    Example:
        >>> retrieval_metrics(np.array([[1, 0]]), ["a"], ["a", "b"], ks=(1, 2), precision_at=2)["R@2"]
        1.0
    """
    gallery_arr = np.asarray(gallery_labels, dtype=object)
    query_arr = np.asarray(query_labels, dtype=object)
    if ranked.shape[0] != len(query_arr) or ranked.shape[1] != len(gallery_arr):
        raise ValueError(
            f"ranked has shape {ranked.shape}, expected ({len(query_arr)}, {len(gallery_arr)}): rank the full gallery"
        )
    labels, counts = np.unique(gallery_arr.astype(str), return_counts=True)
    per_label = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    n_relevant = np.array([per_label.get(str(lbl), 0) for lbl in query_arr], dtype=np.int64)
    keep = n_relevant > 0
    out: dict[str, float] = {"queries": int(keep.sum()), "queries_without_match": int((~keep).sum())}
    names = [f"R@{k}" for k in ks] + [f"P@{precision_at}", "mAP@R"]
    if not keep.any():
        return {**out, **{name: float("nan") for name in names}}
    hits = match_matrix(ranked[keep], query_arr[keep], gallery_arr)
    r = n_relevant[keep]
    for k in ks:
        out[f"R@{k}"] = float(hits[:, :k].any(axis=1).mean())
    out[f"P@{precision_at}"] = float((hits[:, :precision_at].sum(axis=1) / precision_at).mean())
    out["mAP@R"] = float(_map_at_r(hits, r).mean())
    return out


def _map_at_r(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at_i = np.cumsum(hits, axis=1) / ranks
    within_r = ranks[None, :] <= n_relevant[:, None]
    return (precision_at_i * hits * within_r).sum(axis=1) / n_relevant


def recall_curve(
    ranked: np.ndarray, query_labels: Sequence[object], gallery_labels: Sequence[object], *, max_k: int = 50
) -> np.ndarray:
    """Recall@K for K = 1..max_k (float array of length ``min(max_k, G)``), answerable queries only."""
    gallery_arr = np.asarray(gallery_labels, dtype=object)
    query_arr = np.asarray(query_labels, dtype=object)
    present = set(gallery_arr.astype(str).tolist())
    keep = np.array([str(lbl) in present for lbl in query_arr], dtype=bool)
    depth = min(max_k, ranked.shape[1])
    if not keep.any():
        return np.full(depth, np.nan)
    hits = match_matrix(ranked[keep, :depth], query_arr[keep], gallery_arr)
    return np.maximum.accumulate(hits, axis=1).mean(axis=0)
