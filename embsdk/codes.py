"""Binary codes: how float embeddings become packed bits, in one documented order.

Bit order: ``numpy.packbits(bits, axis=-1)`` with its default ``bitorder="big"``: dimension ``8*j + k``
of the embedding is bit ``7 - k`` (most significant first) of byte ``j``. A dimension's bit is 1 when
its LayerNorm-ed value is > 0 (the threshold). The ONNX graph packs bits the same way, so every
consumer gets identical bytes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIT_ORDER", "THRESHOLD", "binarize", "hamming", "pack_codes", "unpack_codes"]

BIT_ORDER = "numpy-packbits-big"
THRESHOLD = 0.0


def binarize(embeddings: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Float (N, D) → bool (N, D): 1 where the value is > threshold."""
    return np.asarray(embeddings) > threshold


def pack_codes(embeddings: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Float (N, D) → packed uint8 (N, ceil(D/8)) in :data:`BIT_ORDER`."""
    return np.packbits(binarize(embeddings, threshold), axis=-1)


def unpack_codes(codes: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Packed uint8 (N, B) → uint8 bits (N, bits)."""
    return np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=-1, count=bits)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes ``a`` (N, B) and ``b`` (M, B) → int32 (N, M). Reference, not fast.

    The same function as :func:`embsdk.hamming.reference.hamming_matrix` (the one reference).
    """
    from embsdk.hamming.reference import hamming_matrix

    return hamming_matrix(a, b)
