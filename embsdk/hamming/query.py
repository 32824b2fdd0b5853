"""Turn what a caller passes to ``search`` (id, Embedding, packed array, image path) into packed query codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import CodeLengthError, IncompatibleGenerationError, InvalidTopK, StoreError
from embsdk.store.reader import as_item_id
from embsdk.types import Embedding

__all__ = ["MAX_K", "Query", "QueryLike", "check_k", "to_query"]

MAX_K = 10_000
"""The most results one search returns (``k`` is an integer from 1 to MAX_K); scan the store for more."""


def check_k(k: Any, *, name: str = "k", limit: int = MAX_K) -> int:
    """*k* as an int when it is an integer from 1 to *limit*.

    Raises:
        InvalidTopK: a bool, a non-integer (1.5, "3") or a value outside [1, limit].
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise InvalidTopK(f"{name} must be an integer from 1 to {limit:,}, got {k!r}.")
    return int(k)


QueryLike = int | np.integer | Embedding | np.ndarray | bytes | str | PathLike


@dataclass(frozen=True)
class Query:
    """Packed code (1, B) of one query, its float vector when known, and the item id when it came from the store."""

    code: np.ndarray
    vector: np.ndarray | None = None
    item_id: int | None = None


def to_query(
    query: Any,
    *,
    generation: str,
    bits: int,
    fetch: Callable[[int], Embedding],
    embed_image: Callable[[str], Embedding],
) -> Query:
    """Normalize *query* for a search in *generation*.

    Raises:
        IncompatibleGenerationError: an Embedding of another generation.
        CodeLengthError: a raw code of the wrong number of bytes.
        ItemNotFound: an id not in the store (from *fetch*).
        InvalidItemId: an integer outside int64.
        StoreError: a value of an unsupported type.
    """
    nbytes = (bits + 7) // 8
    if isinstance(query, (bool, np.bool_)):
        raise StoreError(
            "A boolean is not a query; pass an item id, an Embedding, a packed code or an image path."
        )
    if isinstance(query, (int, np.integer)):
        item_id = as_item_id(query)  # refuse ids outside int64 before any lookup
        e = fetch(item_id)
        return Query(e.code[None], e.vector, item_id)
    if isinstance(query, Embedding):
        if query.generation != generation:
            raise IncompatibleGenerationError(query.generation, generation)
        if query.code.size != nbytes:
            raise CodeLengthError(query.code.size, nbytes, generation)
        return Query(query.code[None], query.vector, query.item_id)
    if isinstance(query, (bytes, bytearray)):
        query = np.frombuffer(bytes(query), dtype=np.uint8)
    if isinstance(query, np.ndarray):
        if query.dtype != np.uint8:
            raise StoreError(
                f"A raw code must be packed uint8 bytes (numpy.packbits), not {query.dtype}; "
                "pass unpacked bits through numpy.packbits first."
            )
        code = query.reshape(-1) if query.ndim == 1 or query.shape[0] == 1 else None
        if code is None:
            raise StoreError(
                f"search() takes one query; got an array of shape {query.shape} (use search_batch)."
            )
        if code.size != nbytes:
            raise CodeLengthError(code.size, nbytes, generation)
        return Query(np.ascontiguousarray(code)[None])
    if isinstance(query, (str, PathLike)):
        e = embed_image(str(Path(query)))
        if e.generation != generation:
            raise IncompatibleGenerationError(e.generation, generation)
        return Query(e.code[None], e.vector)
    raise StoreError(
        f"Unsupported query type {type(query).__name__}; pass an item id (int), an Embedding, "
        "a packed uint8 code or an image path."
    )
