"""Read a generation's embedding store: vectorized id lookup over memory-mapped, sorted shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import ItemNotFound, ShardCorrupt, StoreError
from embsdk.store._format import ShardArrays, code_bytes, open_shard
from embsdk.store._manifest import StoreManifest, generation_root, read_manifest

__all__ = ["EmbeddingStore", "LiveRows", "Lookup", "as_item_ids"]


@dataclass(frozen=True)
class Lookup:
    """Where each requested id lives: ``shard[i]`` (index into data shards, -1 = absent) and ``row[i]``."""

    ids: np.ndarray
    shard: np.ndarray
    row: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return self.shard >= 0


@dataclass(frozen=True)
class LiveRows:
    """Every live item of a store, sorted by id: ids, packed codes and (optional) float16 vectors."""

    ids: np.ndarray
    codes: np.ndarray
    vectors: np.ndarray | None


class EmbeddingStore:
    """A read-only, memory-mapped view of one generation's store at one manifest version.

    Open with :meth:`open`; the view never changes afterwards (call :meth:`refresh` for the latest commit).
    Newer shards win over older ones; a tombstone hides older rows of the same id.

    Example:
        >>> store = EmbeddingStore.open("~/.embsdk/store", "unified-v1")   # doctest: +SKIP
        >>> ids, codes, vectors = store.get([12, 7])                     # doctest: +SKIP
    """

    def __init__(self, root: Path, manifest: StoreManifest, shards: list[ShardArrays]) -> None:
        self.root = root
        self.manifest = manifest
        self._all = shards  # in commit order (oldest first)
        self._newest_first = shards[::-1]
        self._data = [s for s in shards if s.header.kind == "data"]
        self._data_index = {id(s): i for i, s in enumerate(self._data)}
        self._live: LiveRows | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, store_dir: str | Path, generation: str, *, spec: dict[str, Any] | None = None) -> EmbeddingStore:
        """Open the store of *generation* under *store_dir* (``EMB_STORE``).

        Args:
            store_dir: the store folder holding one sub-folder per generation.
            generation: resolved generation name (not an alias).
            spec: the generation's embedding spec from the registry; when given it must equal the store's.

        Raises:
            StoreNotFound: no store for that generation.
            IncompatibleGenerationError: a manifest or shard header names another generation.
            ShardCorrupt: the spec differs, or a shard is damaged.
        """
        root = generation_root(Path(store_dir).expanduser(), generation)
        for attempt in range(3):  # a compaction may delete shards between reading the manifest and opening them
            manifest = read_manifest(root, generation)
            if spec is not None and spec != manifest.spec:
                raise ShardCorrupt(f"The store of {generation!r} was written with spec {manifest.spec}, but the registry "
                                   f"says {spec}; it cannot be read as this generation. Re-run the backfill.")
            try:
                shards = [open_shard(root / "shards" / e.name, generation=generation, spec=manifest.spec,
                                     header_sha256=e.header_sha256) for e in manifest.shards]
            except ShardCorrupt:
                if attempt < 2 and read_manifest(root, generation).version != manifest.version:
                    continue
                raise
            return cls(root, manifest, shards)
        raise AssertionError("unreachable")

    def refresh(self) -> EmbeddingStore:
        """This store at its latest committed version (``self`` when nothing changed)."""
        if read_manifest(self.root, self.generation).version == self.manifest.version:
            return self
        return EmbeddingStore.open(self.root.parent, self.generation)

    # ------------------------------------------------------------------ properties
    @property
    def generation(self) -> str:
        return self.manifest.generation

    @property
    def spec(self) -> dict[str, Any]:
        return self.manifest.spec

    @property
    def bits(self) -> int:
        return int(self.spec["bits"])

    @property
    def code_bytes(self) -> int:
        return code_bytes(self.spec)

    @property
    def has_vectors(self) -> bool:
        return bool(self._data) and all(s.vectors is not None for s in self._data if s.header.rows)

    @property
    def shards(self) -> list[ShardArrays]:
        return list(self._all)

    def __len__(self) -> int:
        if len(self._all) == 1:
            return int(self._all[0].header.rows) if self._all[0].header.kind == "data" else 0
        return int(self.live().ids.size)

    # ------------------------------------------------------------------ lookup
    def lookup(self, ids: np.ndarray | list[int]) -> Lookup:
        """Locate *ids* (any order, duplicates allowed): one ``np.searchsorted`` per shard, newest shard first."""
        q = as_item_ids(ids)
        shard = np.full(q.size, -1, dtype=np.int64)
        row = np.zeros(q.size, dtype=np.int64)
        if q.size == 0 or not self._all:
            return Lookup(q, shard, row)
        order = np.argsort(q, kind="stable") if q.size > 1 else np.zeros(1, dtype=np.int64)
        sq = q[order]
        pending = np.ones(q.size, dtype=bool)  # in sorted order
        for s in self._newest_first:
            n = s.header.rows
            if n == 0 or sq[-1] < s.header.min_id or sq[0] > s.header.max_id:  # type: ignore[operator]
                continue
            pos = np.searchsorted(s.ids, sq)
            hit = pending & (pos < n)
            hit[hit] = s.ids[pos[hit]] == sq[hit]
            if not hit.any():
                continue
            pending &= ~hit
            if s.header.kind == "data":
                idx = order[hit]
                shard[idx] = self._data_index[id(s)]
                row[idx] = pos[hit]
            if not pending.any():
                break
        return Lookup(q, shard, row)

    def get(
        self, ids: np.ndarray | list[int], *, with_vectors: bool = False, skip_missing: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Codes (and float16 vectors) of *ids*, one row per id, in the order given.

        Returns:
            ``(ids, codes, vectors)``; with ``skip_missing`` the absent ids are dropped from all three.

        Raises:
            ItemNotFound: some ids are absent (or deleted) and ``skip_missing`` is False.
        """
        loc = self.lookup(ids)
        found = loc.found
        if not found.all():
            if not skip_missing:
                raise ItemNotFound([int(i) for i in loc.ids[~found]], self.generation)
            loc = Lookup(loc.ids[found], loc.shard[found], loc.row[found])
        n = loc.ids.size
        codes = np.empty((n, self.code_bytes), dtype=np.uint8)
        vectors = None
        if with_vectors and self.has_vectors:
            dim = self._data[0].vectors.shape[1]  # type: ignore[union-attr]
            vectors = np.empty((n, dim), dtype=np.float16)
        if len(self._data) == 1:  # the common case after compaction: one gather
            if n:
                codes[:] = self._data[0].codes[loc.row]  # type: ignore[index]
                if vectors is not None:
                    vectors[:] = self._data[0].vectors[loc.row]  # type: ignore[index]
        else:
            for i, s in enumerate(self._data):
                sel = np.flatnonzero(loc.shard == i)
                if sel.size:
                    codes[sel] = s.codes[loc.row[sel]]  # type: ignore[index]
                    if vectors is not None:
                        vectors[sel] = s.vectors[loc.row[sel]]  # type: ignore[index]
        return loc.ids, codes, vectors

    def get_one(self, item_id: int, *, with_vector: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Code (and float16 vector) of one id: the single-item fast path of :meth:`get`.

        Raises:
            ItemNotFound: the id is absent or deleted.
        """
        if not -(2**63) <= item_id < 2**63:
            raise ItemNotFound([item_id], self.generation)
        for s in self._newest_first:
            h = s.header
            if h.rows and h.min_id <= item_id <= h.max_id:  # type: ignore[operator]
                pos = int(s.ids.searchsorted(item_id))
                if pos < h.rows and s.ids[pos] == item_id:
                    if s.codes is None:  # tombstone
                        break
                    vec = s.vectors[pos] if with_vector and s.vectors is not None else None
                    return s.codes[pos], vec
        raise ItemNotFound([item_id], self.generation)

    def contains(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """Boolean mask: which of *ids* are live in this store."""
        return self.lookup(ids).found

    # ------------------------------------------------------------------ whole-store views
    def live(self) -> LiveRows:
        """All live rows sorted by id (zero-copy memory maps when the store is one compacted data shard)."""
        if self._live is not None:
            return self._live
        if len(self._all) == 1 and self._all[0].header.kind == "data":
            s = self._all[0]
            self._live = LiveRows(s.ids, s.codes, s.vectors)  # type: ignore[arg-type]
            return self._live
        if not self._data:
            self._live = LiveRows(np.empty(0, np.int64), np.empty((0, self.code_bytes), np.uint8), None)
            return self._live
        all_ids = np.unique(np.concatenate([s.ids for s in self._all]))
        live_ids, codes, vectors = self.get(all_ids, with_vectors=True, skip_missing=True)
        self._live = LiveRows(live_ids, codes, vectors)
        return self._live

    def live_ids(self) -> np.ndarray:
        """Sorted int64 ids of every live item."""
        return self.live().ids

    def shard_files(self) -> list[dict[str, Any]]:
        """Live shards in commit order with their file paths, for engines that read the layout directly.

        Example (Ray):
            >>> files = store.shard_files()                                               # doctest: +SKIP
            >>> ds = ray.data.read_numpy([f["codes"] for f in files if f["kind"] == "data"])  # doctest: +SKIP
        """
        out = []
        for e, s in zip(self.manifest.shards, self._all):
            files = {name.removesuffix(".npy"): str(s.path / name) for name in s.header.files}
            out.append({"name": e.name, "kind": e.kind, "seq": e.seq, "rows": e.rows, **files})
        return out

    def info(self) -> dict[str, Any]:
        """Summary for ``emb store info``."""
        m = self.manifest
        return {"generation": m.generation, "spec": m.spec, "root": str(self.root), "version": m.version,
                "updated_at": m.updated_at, "items": len(self), "has_vectors": self.has_vectors,
                "shards": [{**e.to_dict(), "bytes": sum(int(f["bytes"]) for f in s.header.files.values())}
                           for e, s in zip(m.shards, self._all)]}


def as_item_ids(ids: Any) -> np.ndarray:
    """*ids* as a flat int64 array; anything that is not an integer (floats, strings, > 64 bits) is refused.

    Raises:
        StoreError: the ids are not 64-bit integers.
    """
    try:
        a = np.asarray(ids)
        if a.size and (a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer)):
            raise TypeError(a.dtype)
        return a.astype(np.int64, copy=False).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise StoreError(f"Item ids must be 64-bit integers; got {np.asarray(ids, dtype=object).reshape(-1)[:3]!r}…") from None
