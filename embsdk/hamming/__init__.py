"""Hamming search over packed binary codes: faiss binary indexes and a numpy reference.

(Named ``hamming`` rather than ``search`` so the subpackage never shadows the public ``embsdk.search()``.)

faiss is imported on first use (``pip install 'embsdk[search]'``).
"""

from embsdk.hamming.index import INDEX_KINDS, BinaryIndex, import_faiss, register_index_kind
from embsdk.hamming.reference import hamming_matrix, hamming_topk
from embsdk.hamming.rerank import cosine_rerank

__all__ = [
    "INDEX_KINDS",
    "BinaryIndex",
    "cosine_rerank",
    "hamming_matrix",
    "hamming_topk",
    "import_faiss",
    "register_index_kind",
]
