"""Score embedded rows under each task's protocol: float (cosine) and binary (Hamming), side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embsdk.codes import pack_codes

from .embed import EmbeddedRows
from .metrics import (
    DEFAULT_KS,
    Metric,
    rank_gallery,
    rank_topk,
    recall_curve,
    required_depth,
    retrieval_metrics,
)
from .protocol import TaskProtocol

__all__ = ["KINDS", "TOP_SHOWN", "TaskResult", "score_task", "score_tasks"]

KINDS: dict[str, Metric] = {"float": "cosine", "binary": "hamming"}
TOP_SHOWN = 8  # ranks kept per query for the result grids


@dataclass
class TaskResult:
    """Metrics of one task for the float embedding and the binary code.

    Attributes:
        protocol: the task's queries and gallery (invalid images already removed).
        metrics: ``{"float": {"R@1": ...}, "binary": {...}}``.
        curves: ``{"float": recall@1..K, "binary": ...}`` for the plots.
        top_rows: ``{"float": (Q, 8) manifest rows of the best gallery items, ...}`` for the grids.
    """

    protocol: TaskProtocol
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    top_rows: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def binary_float_r1_ratio(self) -> float:
        """Binary R@1 / float R@1 (NaN when float R@1 is 0)."""
        f, b = self.metrics["float"]["R@1"], self.metrics["binary"]["R@1"]
        return float(b / f) if f > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        p = self.protocol
        return {
            "kind": p.kind,
            "protocol": p.describe(),
            "queries": len(p.query_rows),
            "gallery": len(p.gallery_rows),
            **{kind: self.metrics[kind] for kind in KINDS},
            "binary_float_r1_ratio": self.binary_float_r1_ratio,
        }


def _drop_invalid(p: TaskProtocol, embedded: EmbeddedRows) -> TaskProtocol:
    bad = set(embedded.rows[~embedded.valid].tolist())
    if not bad:
        return p
    q = np.array([r not in bad for r in p.query_rows], dtype=bool)
    g = np.array([r not in bad for r in p.gallery_rows], dtype=bool)
    return TaskProtocol(
        p.task, p.kind, p.query_rows[q], p.gallery_rows[g], p.query_labels[q], p.gallery_labels[g]
    )


def score_task(
    protocol: TaskProtocol,
    embedded: EmbeddedRows,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    precision_at: int = 20,
    curve_k: int = 50,
    reference: bool = False,
) -> TaskResult:
    """Rank the task's gallery for every query with both representations and compute the metrics.

    Args:
        protocol: queries and gallery (manifest rows and labels).
        embedded: float embeddings covering those rows.
        ks: recall@K values.
        precision_at: K of precision@K.
        curve_k: length of the recall@K curve.
        reference: rank the whole gallery with the numpy reference (:func:`~.metrics.rank_gallery`)
            instead of faiss top-k (:func:`~.metrics.rank_topk`); the metrics are the same.
    """
    p = _drop_invalid(protocol, embedded)
    floats_q = embedded.floats[embedded.lookup(p.query_rows)]
    floats_g = embedded.floats[embedded.lookup(p.gallery_rows)]
    inputs = {"float": (floats_q, floats_g), "binary": (pack_codes(floats_q), pack_codes(floats_g))}
    result = TaskResult(protocol=p)
    depth = max(
        required_depth(p.query_labels, p.gallery_labels, ks=ks, precision_at=precision_at), curve_k, TOP_SHOWN
    )
    for kind, metric in KINDS.items():
        if reference:
            ranked = rank_gallery(*inputs[kind], metric)
        else:
            ranked = rank_topk(*inputs[kind], metric, depth)
        result.metrics[kind] = retrieval_metrics(
            ranked, p.query_labels, p.gallery_labels, ks=ks, precision_at=precision_at
        )
        result.curves[kind] = recall_curve(ranked, p.query_labels, p.gallery_labels, max_k=curve_k)
        result.top_rows[kind] = p.gallery_rows[ranked[:, :TOP_SHOWN]]
    return result


def score_tasks(protocols: Sequence[TaskProtocol], embedded: EmbeddedRows, **kwargs: Any) -> list[TaskResult]:
    """:func:`score_task` for each protocol."""
    return [score_task(p, embedded, **kwargs) for p in protocols]
