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

Two ways to rank, with identical results (tested on galleries full of ties):
    * :func:`rank_gallery`, the numpy **reference**: the whole (Q, G) distance matrix and a stable argsort;
    * :func:`rank_topk`, what ``emb eval`` uses: exact top-``depth`` with faiss (``IndexBinaryFlat`` for codes,
      ``IndexFlatIP`` on L2-normalized float32 for floats), over-fetching until the candidates hold every item
      tied with (binary) or within float32 error of (float) the last kept rank, then ordering the candidates
      by the reference's key (distance, then gallery index; float cosines recomputed in float64). The metrics
      only need the first ``max(K, 20, R)`` ranks (:func:`required_depth`), not the whole gallery.
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
    "rank_topk",
    "recall_curve",
    "required_depth",
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


# float32 inner products of unit vectors are within ~1e-6 of the float64 ones: a candidate set is complete
# when its last similarity is below the kept boundary by more than this
_FLOAT_MARGIN = 1e-4
_OVERFETCH = 64  # extra candidates per query on the first faiss search
_SEARCH_BLOCK = 1024  # queries per faiss search call


def _import_faiss() -> object | None:
    try:
        import faiss
    except ModuleNotFoundError:
        return None
    return faiss


def rank_topk(
    query: np.ndarray, gallery: np.ndarray, metric: Metric, depth: int, *, use_faiss: bool | None = None
) -> np.ndarray:
    """The first *depth* ranks of :func:`rank_gallery`, exactly (same tie order), computed with faiss.

    faiss orders equal distances arbitrarily and may cut a run of ties at *depth* anywhere. So each query
    gets ``depth + 64`` candidates first; a query whose last candidate still ties with (binary) or is within
    float32 error of (float) its rank *depth* is searched again with twice as many, up to the whole
    gallery. The candidates are then ordered by the reference's key: Hamming distance or float64 cosine,
    then gallery index.

    Args:
        query, gallery: as for :func:`rank_gallery`.
        metric: ``"cosine"`` or ``"hamming"``.
        depth: ranks to return (capped at the gallery size).
        use_faiss: ``None``: faiss when installed, else the numpy reference; ``False``: the reference.

    Returns:
        int64 (Q, min(depth, G)) gallery indices, best first; equal to ``rank_gallery(...)[:, :depth]``.
    """
    if metric not in ("cosine", "hamming"):
        raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'hamming'")
    n_gallery = len(gallery)
    depth = min(int(depth), n_gallery)
    faiss = _import_faiss() if use_faiss is not False else None
    if faiss is None or depth == 0 or len(query) == 0:
        return rank_gallery(query, gallery, metric, depth=depth)
    if metric == "hamming":
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(query, dtype=np.uint8)))
        g = np.ascontiguousarray(np.atleast_2d(np.asarray(gallery, dtype=np.uint8)))
        if q.shape[1] != g.shape[1]:
            raise ValueError(f"query codes have {q.shape[1]} bytes but gallery codes have {g.shape[1]}")
        index = faiss.IndexBinaryFlat(g.shape[1] * 8)
        index.use_heap = False  # counting-based top-k: ~3x faster than the heap at these k (measured)
        index.add(g)
        q_exact, g_exact = q, g
    else:
        q_exact, g_exact = _l2_normalize(query), _l2_normalize(gallery)
        q = np.ascontiguousarray(q_exact, dtype=np.float32)
        g = np.ascontiguousarray(g_exact, dtype=np.float32)
        index = faiss.IndexFlatIP(g.shape[1])
        index.add(g)
    out = np.empty((len(q), depth), dtype=np.int64)
    for start in range(0, len(q), _SEARCH_BLOCK):
        block = np.arange(start, min(start + _SEARCH_BLOCK, len(q)))
        k = min(n_gallery, depth + _OVERFETCH)
        while len(block):
            dist, idx = index.search(q[block], k)
            if metric == "hamming":
                complete = dist[:, -1] > dist[:, depth - 1]
            else:  # faiss returns inner products, highest first
                complete = dist[:, -1] < dist[:, depth - 1] - _FLOAT_MARGIN
            if k == n_gallery:
                complete[:] = True
            done = block[complete]
            if len(done):
                out[done] = _order_candidates(
                    metric, q_exact[done], g_exact, idx[complete], dist[complete], depth
                )
            block = block[~complete]
            k = min(n_gallery, 2 * k)
    return out


def _order_candidates(
    metric: Metric, q: np.ndarray, g: np.ndarray, cand: np.ndarray, dist: np.ndarray, depth: int
) -> np.ndarray:
    """Order each query's candidates by the reference key (distance, gallery index); keep *depth*.

    faiss's Hamming distances are exact integers; cosines are recomputed in float64 like the reference
    (the same matrix product, in blocks of queries, then the candidates' entries).
    """
    cand = cand.astype(np.int64)
    if metric == "hamming":  # one int64 key, distance then index: one sort instead of a lexsort
        order = np.argsort(dist.astype(np.int64) * (len(g) + 1) + cand, axis=1)
        return np.take_along_axis(cand, order, axis=1)[:, :depth]
    key = np.empty(cand.shape, dtype=np.float64)
    step = max(1, (1 << 22) // max(1, len(g)))  # bounds the (step, G) float64 block at 32 MiB
    for s in range(0, len(q), step):
        sims = q[s : s + step] @ g.T
        key[s : s + step] = -np.take_along_axis(sims, cand[s : s + step], axis=1)
    order = np.lexsort((cand, key), axis=1)  # the last key sorts first: distance, then gallery index
    return np.take_along_axis(cand, order, axis=1)[:, :depth]


def required_depth(
    query_labels: Sequence[object],
    gallery_labels: Sequence[object],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    precision_at: int = 20,
) -> int:
    """Ranks :func:`retrieval_metrics` needs: ``max(K, precision_at, R)`` over answerable queries, at most G.

    ``R`` (mAP@R) is the number of gallery items of a query's class, so this can be most of the gallery
    for a big class; it is never more than the gallery.
    """
    g = np.asarray(gallery_labels, dtype=object).astype(str)
    n = len(g)
    labels, counts = np.unique(g, return_counts=True)
    per_label = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    r = [per_label.get(str(lbl), 0) for lbl in np.asarray(query_labels, dtype=object)]
    return int(min(n, max([*ks, precision_at, *r, 1])))


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
    """Score a ranking: ``R@K`` for each K, ``P@<precision_at>``, ``mAP@R``.

    Args:
        ranked: (Q, depth) gallery indices best first: the full ranking (:func:`rank_gallery`), or its first
            ``depth >= required_depth(...)`` ranks (:func:`rank_topk`); the metrics are the same.
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
    need = required_depth(query_arr, gallery_arr, ks=ks, precision_at=precision_at)
    if ranked.shape[0] != len(query_arr) or not need <= ranked.shape[1] <= len(gallery_arr):
        raise ValueError(
            f"ranked has shape {ranked.shape}, expected ({len(query_arr)}, {need}..{len(gallery_arr)}): rank the "
            f"full gallery, or at least its first {need} ranks (max of K, precision_at and R)"
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
