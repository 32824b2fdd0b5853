"""Offline evaluation (Zhai et al., KDD 2019 protocol): retrieval metrics per task, float vs binary, as a report folder.

Modules: :mod:`.metrics` (exact metrics; faiss top-k ranking with the numpy full sort as reference),
:mod:`.protocol` (queries/gallery per task), :mod:`.embed` (embedding manifest rows: ONNX Runtime or PyTorch,
npz cache), :mod:`.models` (run folder or ``imagenet:<backbone>``),
:mod:`.scoring`, :mod:`.figures`, :mod:`.report`, and :func:`evaluate` (what ``emb eval`` calls).
"""

from .evaluate import evaluate
from .metrics import rank_gallery, rank_topk, recall_curve, required_depth, retrieval_metrics
from .protocol import TaskProtocol, build_protocols

__all__ = [
    "TaskProtocol",
    "build_protocols",
    "evaluate",
    "rank_gallery",
    "rank_topk",
    "recall_curve",
    "required_depth",
    "retrieval_metrics",
]
