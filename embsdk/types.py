"""Plain value types returned by the SDK (no torch, no SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import numpy as np

from embsdk.errors import CodeLengthError, IncompatibleGenerationError, MissingExtraError, StoreError

__all__ = ["Embedding", "Hit", "ItemIds", "SearchResult"]

if TYPE_CHECKING:
    from bitarray import bitarray

ItemIds: TypeAlias = Sequence[int] | np.ndarray
"""Item ids for a batch call: a sequence of ints or an integer numpy array (each an int64)."""


@dataclass(frozen=True, eq=False)
class Embedding:
    """One item's binary code, stamped with the generation that produced it.

    Two embeddings are equal when their generation, bits and code are (``item_id`` and ``vector`` do not
    count: the same image embedded twice, or fetched from the store, is the same embedding); they hash
    alike, so they work as dict keys. ``np.asarray(e)`` is the packed uint8 code.

    Attributes:
        code: packed bits, uint8 array of ``ceil(bits / 8)`` bytes (``numpy.packbits`` big-endian order).
        bits: number of meaningful bits.
        generation: the resolved generation name (never an alias).
        item_id: the item's 64-bit id, when it came from the store.
        vector: the float embedding (for re-ranking), when requested and available.
    """

    code: np.ndarray
    bits: int
    generation: str
    item_id: int | None = None
    vector: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        code = np.ascontiguousarray(self.code, dtype=np.uint8).reshape(-1)
        if code.size != (self.bits + 7) // 8:
            raise CodeLengthError(code.size, (self.bits + 7) // 8, self.generation)
        object.__setattr__(self, "code", code)

    @property
    def nbytes(self) -> int:
        return int(self.code.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Embedding):
            return NotImplemented
        return (
            self.generation == other.generation
            and self.bits == other.bits
            and self.code.tobytes() == other.code.tobytes()
        )

    def __hash__(self) -> int:
        return hash((self.generation, self.bits, self.code.tobytes()))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(embedding)``: the packed code (uint8, ``ceil(bits / 8)`` bytes), read-only."""
        code = self.code.view()
        code.flags.writeable = False
        if dtype is not None and np.dtype(dtype) != code.dtype:
            return code.astype(dtype)
        return code.copy() if copy else code

    def bit_array(self) -> np.ndarray:
        """The bits as a uint8 0/1 array of length ``bits``."""
        return np.unpackbits(self.code, count=self.bits)

    def to_bitarray(self) -> bitarray:
        """The bits as a :class:`bitarray.bitarray` (big-endian, same order as ``code``)."""
        try:
            from bitarray import bitarray
        except ModuleNotFoundError:
            raise MissingExtraError("bitarray", "search") from None
        out = bitarray(endian="big")
        out.frombytes(self.code.tobytes())
        return out[: self.bits]

    def hamming(self, other: Embedding | np.ndarray | bytes) -> int:
        """Hamming distance to another code of the *same* generation.

        Args:
            other: an :class:`Embedding`, or this generation's packed code (uint8 array or bytes of
                ``ceil(bits / 8)`` bytes, ``numpy.packbits`` order).

        Raises:
            IncompatibleGenerationError: the two codes come from different generations.
            CodeLengthError: a raw code of the wrong number of bytes.
            StoreError: a raw code that is not packed uint8 bytes.
        """
        if isinstance(other, Embedding):
            if other.generation != self.generation:
                raise IncompatibleGenerationError(self.generation, other.generation)
            code = other.code
        else:
            code = self._raw_code(other)
        from embsdk.hamming.reference import hamming_distance  # the one reference

        return hamming_distance(self.code, code)

    def _raw_code(self, other: Any) -> np.ndarray:
        if isinstance(other, (bytes, bytearray)):
            other = np.frombuffer(bytes(other), dtype=np.uint8)
        if not isinstance(other, np.ndarray) or other.dtype != np.uint8:
            kind = other.dtype if isinstance(other, np.ndarray) else type(other).__name__
            raise StoreError(
                f"hamming() takes an Embedding or a packed uint8 code (numpy.packbits), not {kind}."
            )
        if other.ndim > 1 and other.size != other.shape[-1]:
            raise StoreError(f"hamming() compares with one code; got an array of shape {other.shape}.")
        code = other.reshape(-1)
        if code.size != self.nbytes:
            raise CodeLengthError(code.size, self.nbytes, self.generation)
        return code

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "item_id": self.item_id,
            "generation": self.generation,
            "bits": self.bits,
            "code_hex": self.code.tobytes().hex(),
        }
        if self.vector is not None:
            d["vector"] = [float(v) for v in self.vector]
        return d


class Hit(NamedTuple):
    """One search result: the item id, its Hamming distance to the query, and its re-ranked score (or None)."""

    id: int
    distance: int
    score: float | None


@dataclass(frozen=True)
class SearchResult:
    """Nearest neighbours of one query: ids by increasing Hamming distance (and re-ranked scores).

    Iterating yields :class:`Hit` tuples ``(id, distance, score)`` in rank order; ``len()`` is the number of hits::

        for hit in embsdk.search(123, k=5):
            print(hit.id, hit.distance)
    """

    generation: str
    ids: np.ndarray
    distances: np.ndarray
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hit]:
        scores = [None] * len(self.ids) if self.scores is None else [float(s) for s in self.scores]
        for i, d, s in zip(self.ids.tolist(), self.distances.tolist(), scores):
            yield Hit(int(i), int(d), s)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "generation": self.generation,
            "ids": [int(i) for i in self.ids],
            "hamming": [int(x) for x in self.distances],
        }
        if self.scores is not None:
            d["scores"] = [float(s) for s in self.scores]
        return d
