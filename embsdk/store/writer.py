"""Write a generation's embedding store: idempotent upserts and deletes, committed atomically as new shards."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsdk.errors import CodeLengthError, StoreError
from embsdk.store._format import code_bytes, write_shard
from embsdk.store._manifest import (
    GenerationLock,
    ShardEntry,
    ensure_store,
    generation_root,
    read_manifest,
    write_manifest,
)
from embsdk.store.reader import EmbeddingStore, as_item_ids

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from embsdk.store.publish import PublishedShard

__all__ = ["CommitResult", "StoreWriter"]


@dataclass(frozen=True)
class CommitResult:
    """What one :meth:`StoreWriter.commit` did."""

    version: int
    upserted: int
    deleted: int
    shards: tuple[str, ...]
    published: tuple[PublishedShard, ...] = ()


class StoreWriter:
    """Buffers upserts and deletes for one generation and commits them as new shards.

    A writer holds its generation's lock from construction to :meth:`close` (or the end of a ``with`` block):
    a second writer or a compaction of the same generation is refused with :class:`~embsdk.errors.StoreLocked`
    meanwhile, so two backfills of one version can never both write.

    Every :meth:`commit` writes at most one data shard and one tombstone shard (tmp folder, fsync, atomic
    rename), then atomically replaces the manifest; until then readers see the previous state, and a crash
    loses only the uncommitted buffer. Upserting an id again is harmless (the newest row wins), so a
    backfill can re-send a batch after a crash and still end with every id exactly once: commit per batch,
    and on restart skip ``present_ids()``.

    Example:
        >>> with StoreWriter(store_dir, "unified-v1", {"dim": 256, "bits": 256}) as w:   # doctest: +SKIP
        ...     w.upsert(ids, codes, vectors)
        ...     w.delete([42])
        ...     w.commit()
    """

    def __init__(self, store_dir: str | Path, generation: str, spec: dict[str, Any]) -> None:
        self.store_dir = Path(store_dir).expanduser()
        self.generation = generation
        self.spec = dict(spec)
        self._nbytes = code_bytes(self.spec)
        self.root = generation_root(self.store_dir, generation)
        self._lock: GenerationLock | None = None
        self._lock = GenerationLock(self.root, generation)  # held until close(): one writer per generation
        try:
            ensure_store(self.root, generation, self.spec)
        except BaseException:
            self.close()
            raise
        self._ops: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        self._pending = 0

    def close(self) -> None:
        """Release the generation's lock (idempotent); uncommitted rows are dropped."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def closed(self) -> bool:
        return self._lock is None

    def __enter__(self) -> StoreWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None and self._ops:
                self.commit()
        finally:
            self.close()

    def __del__(self) -> None:  # a fallback for writers never closed: the lock dies with the object
        if getattr(self, "_lock", None) is not None:
            self.close()

    def _check_open(self) -> None:
        if self._lock is None:
            raise StoreError(f"This StoreWriter of {self.generation!r} is closed; open a new one to write.")

    # ------------------------------------------------------------------ buffering
    def upsert(self, ids: Any, codes: Any, vectors: Any | None = None) -> None:
        """Add or replace items. ``codes``: uint8 (N, ceil(bits/8)); ``vectors``: float (N, dim) or None.

        Raises:
            CodeLengthError: codes have the wrong number of bytes for the generation.
            StoreError: shapes disagree, or ids are not integers.
        """
        self._check_open()
        ids_a = as_item_ids(ids)
        codes_a = np.asarray(codes)
        if codes_a.dtype != np.uint8:
            if not np.issubdtype(codes_a.dtype, np.integer) or (
                codes_a.size and (codes_a.min() < 0 or codes_a.max() > 255)
            ):
                raise StoreError(
                    f"codes must be packed uint8 bytes (numpy.packbits); got dtype {codes_a.dtype}."
                )
            codes_a = codes_a.astype(np.uint8)
        codes_a = (
            codes_a.reshape(ids_a.size, -1)
            if codes_a.size and ids_a.size
            else codes_a.reshape(0, self._nbytes)
        )
        if codes_a.shape[1] != self._nbytes:
            raise CodeLengthError(codes_a.shape[1], self._nbytes, self.generation)
        vec = None
        if vectors is not None:
            vec = np.asarray(vectors, dtype=np.float16)
            dim = self.spec.get("dim")
            if vec.ndim != 2 or vec.shape[0] != ids_a.size or (dim is not None and vec.shape[1] != int(dim)):
                raise StoreError(f"vectors must be (N={ids_a.size}, dim={dim}); got {vec.shape}.")
        if any(op == "upsert" and (v is None) != (vec is None) for op, _, _, v in self._ops):
            raise StoreError("Give vectors for every upsert of a commit, or for none.")
        self._ops.append(("upsert", ids_a, codes_a.copy(), None if vec is None else vec.copy()))
        self._pending += ids_a.size

    def delete(self, ids: Any) -> None:
        """Delete items (written as a tombstone shard on commit; compaction drops them for good)."""
        self._check_open()
        ids_a = as_item_ids(ids)
        self._ops.append(("delete", ids_a, None, None))
        self._pending += ids_a.size

    @property
    def pending(self) -> int:
        """Rows buffered since the last commit."""
        return self._pending

    # ------------------------------------------------------------------ reading back
    def present_ids(self) -> np.ndarray:
        """Sorted ids that are live in the committed store (for resuming a backfill)."""
        return EmbeddingStore.open(self.store_dir, self.generation).live_ids()

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean mask of which *ids* are live in the committed store."""
        return EmbeddingStore.open(self.store_dir, self.generation).contains(ids)

    # ------------------------------------------------------------------ commit
    def _resolve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Last operation per id wins → (upsert ids sorted, codes, vectors, delete ids sorted)."""
        ids = np.concatenate([o[1] for o in self._ops])
        op_no = np.concatenate([np.full(o[1].size, i) for i, o in enumerate(self._ops)])
        within = np.concatenate([np.arange(o[1].size) for o in self._ops])
        order = np.lexsort((within, op_no, ids))
        ids_s = ids[order]
        last = np.ones(ids_s.size, dtype=bool)
        last[:-1] = ids_s[1:] != ids_s[:-1]
        pick = order[last]  # index into the concatenation, one per distinct id, sorted by id
        is_up = np.concatenate([np.full(o[1].size, o[0] == "upsert") for o in self._ops])[pick]
        ups = [o for o in self._ops if o[0] == "upsert"]
        up_codes = np.concatenate([o[2] for o in ups]) if ups else np.empty((0, self._nbytes), np.uint8)
        has_vec = bool(ups) and ups[0][3] is not None
        up_vecs = np.concatenate([o[3] for o in ups]) if has_vec else None
        # map positions in the full concatenation to positions among upserts
        up_pos = np.cumsum(np.concatenate([np.full(o[1].size, o[0] == "upsert") for o in self._ops])) - 1
        sel = up_pos[pick[is_up]]
        del_ids = ids[pick[~is_up]]
        return ids[pick[is_up]], up_codes[sel], (up_vecs[sel] if up_vecs is not None else None), del_ids

    def commit(self, *, registry: Any | None = None) -> CommitResult:
        """Write the buffer as new shards and atomically publish them in the manifest.

        Args:
            registry: a ``registry.Registry``; when given, every new shard file is also registered as an
                artifact of the generation (content-addressed by sha256).
        """
        self._check_open()
        if not self._ops:
            m = read_manifest(self.root, self.generation)
            return CommitResult(m.version, 0, 0, ())
        up_ids, up_codes, up_vecs, del_ids = self._resolve()
        m = read_manifest(self.root, self.generation)  # nobody else writes while we hold the lock
        seq = m.next_seq
        new: list[ShardEntry] = []
        for kind, ids in (("tombstone", del_ids), ("data", up_ids)):
            if ids.size == 0:
                continue
            name = f"{seq:08d}-{kind}-{secrets.token_hex(4)}"
            path = self.root / "shards" / name
            _, digest = write_shard(
                path,
                generation=self.generation,
                spec=m.spec,
                kind=kind,
                seq=seq,
                ids=ids,
                codes=up_codes if kind == "data" else None,
                vectors=up_vecs if kind == "data" else None,
            )
            new.append(ShardEntry(name=name, kind=kind, seq=seq, rows=int(ids.size), header_sha256=digest))
            seq += 1
        m2 = m.bumped(m.shards + tuple(new), seq)
        write_manifest(self.root, m2)
        logger.info(
            "store %s: committed manifest v%s (+%d upserted, %d deleted; shards %s)",
            self.generation,
            m2.version,
            int(up_ids.size),
            int(del_ids.size),
            ", ".join(e.name for e in new),
        )
        self._ops.clear()
        self._pending = 0
        published: tuple[PublishedShard, ...] = ()
        if registry is not None and new:
            from embsdk.store.publish import publish_shards

            published = tuple(publish_shards(registry, self.root, self.generation, [e.name for e in new]))
        return CommitResult(
            m2.version, int(up_ids.size), int(del_ids.size), tuple(e.name for e in new), published
        )
