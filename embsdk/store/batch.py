"""A batch of stamped codes, as returned by ``get_embeddings``: arrays, not a list of objects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embsdk.types import Embedding

__all__ = ["EmbeddingBatch"]


@dataclass(frozen=True, eq=False)
class EmbeddingBatch:
    """Codes of many items of one generation, one row per id in the order asked.

    Attributes:
        ids: int64 (N,).
        codes: packed uint8 (N, ceil(bits/8)).
        bits: meaningful bits per code.
        generation: the resolved generation name.
        vectors: float16 (N, dim) when requested and stored, else None.

    Indexing gives an :class:`~embsdk.types.Embedding`; iterating yields one per row.
    """

    ids: np.ndarray
    codes: np.ndarray
    bits: int
    generation: str
    vectors: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.ids.size)

    def __getitem__(self, i: int) -> Embedding:
        vec = None if self.vectors is None else self.vectors[i]
        return Embedding(self.codes[i], self.bits, self.generation, int(self.ids[i]), vec)

    def __iter__(self) -> Iterator[Embedding]:
        return (self[i] for i in range(len(self)))

    def to_list(self) -> list[Embedding]:
        return list(self)

    def to_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "bits": self.bits, "items": [e.to_dict() for e in self]}
