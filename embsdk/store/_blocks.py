"""Per-block checksums of a shard's arrays, verified lazily: a reader never hands out bytes it has not checked.

At write time every array file gets the crc32 of each block of ``block_rows`` rows (about 64 KiB of data).
A reader verifies a block the first time a row in it is used and remembers that in a per-process bitmap,
so a steady-state read costs one bitmap test; a whole-store scan (search, compaction) verifies every block.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from embsdk.errors import ShardCorrupt

__all__ = ["BLOCK_BYTES", "BlockCheck", "block_crcs", "block_rows_for", "link"]

BLOCK_BYTES = 64 << 10


def block_rows_for(row_bytes: int) -> int:
    """Rows per checksum block for rows of *row_bytes* bytes (about :data:`BLOCK_BYTES` of data, at least 1)."""
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def block_crcs(array: np.ndarray, block_rows: int) -> str:
    """crc32 of every block of *block_rows* rows of a C-contiguous *array*, as one hex string (8 digits each)."""
    a = np.ascontiguousarray(array)
    return "".join(f"{zlib.crc32(a[i : i + block_rows].data):08x}" for i in range(0, a.shape[0], block_rows))


@dataclass(eq=False)
class BlockCheck:
    """The verification state of one memory-mapped array file of a shard.

    Attributes:
        where: ``<shard>/<file>``, for error messages.
        array: the memory-mapped rows.
        block_rows: rows per checksum block.
        crcs: expected crc32 per block (empty when every block is already verified).
        verified: one byte per block, non-zero once the block matched its checksum in this process.
        damage: shared by the checks of one shard: once any block fails, every block of the shard is
            refused (see :func:`link`).
    """

    where: str
    array: np.ndarray
    block_rows: int
    crcs: np.ndarray
    verified: bytearray = field(default_factory=bytearray)
    damage: list[str] = field(default_factory=list)
    siblings: list[BlockCheck] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.verified:
            self.verified = bytearray(self.blocks)
        self._mask = np.frombuffer(self.verified, dtype=np.bool_) if self.blocks else np.zeros(0, np.bool_)
        self.siblings = self.siblings or [self]

    @classmethod
    def trusted(cls, where: str, array: np.ndarray) -> BlockCheck:
        """A check whose blocks are all verified already (e.g. the whole file's sha256 matched at open)."""
        rows = max(1, int(array.shape[0]))
        return cls(
            where, array, rows, np.zeros(0, np.uint32), bytearray(b"\x01" * (1 if array.shape[0] else 0))
        )

    @property
    def blocks(self) -> int:
        return -(-int(self.array.shape[0]) // self.block_rows)

    def row(self, i: int) -> None:
        """Verify the block holding row *i* (one bitmap test once it has been verified)."""
        b = i // self.block_rows
        if not self.verified[b]:
            self._verify(b)

    def rows(self, rows: np.ndarray) -> None:
        """Verify every block holding one of *rows* (int array of valid row numbers)."""
        if rows.size == 0:
            return
        blocks = rows // self.block_rows
        todo = blocks[~self._mask[blocks]]
        for b in np.unique(todo).tolist():
            self._verify(b)

    def all(self) -> None:
        """Verify every block (before handing the whole array out, e.g. to a search index)."""
        for b in np.flatnonzero(~self._mask).tolist():
            self._verify(b)

    def _verify(self, b: int) -> None:
        if self.damage:
            raise ShardCorrupt(self.damage[0])
        chunk = self.array[b * self.block_rows : (b + 1) * self.block_rows]
        actual = zlib.crc32(np.ascontiguousarray(chunk).data)
        if actual != int(self.crcs[b]):
            first = b * self.block_rows
            self._poison(
                f"Shard {self.where}: rows {first}-{first + len(chunk) - 1} fail their checksum (crc32 "
                f"{actual:08x}, header says {int(self.crcs[b]):08x}); nothing is served from this shard. "
                "Run: emb store verify, then re-run the backfill."
            )
        self.verified[b] = 1

    def _poison(self, message: str) -> None:
        """Record the damage and forget every verified block of the shard, so no later read passes the fast path."""
        self.damage.append(message)
        for check in self.siblings:
            check.verified[:] = bytes(len(check.verified))
        raise ShardCorrupt(message)


def link(checks: list[BlockCheck]) -> None:
    """Make the checks of one shard's files share their damage: one failed block refuses the whole shard."""
    damage: list[str] = []
    for check in checks:
        check.damage, check.siblings = damage, checks
