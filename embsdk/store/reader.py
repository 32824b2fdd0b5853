"""Read a generation's embedding store: vectorized id lookup over memory-mapped, sorted shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import InvalidItemId, ItemNotFound, ShardCorrupt
from embsdk.store._format import CODES, IDS, VECTORS, ShardArrays, code_bytes, open_shard, same_spec
from embsdk.store._manifest import StoreManifest, generation_root, read_manifest
from embsdk.types import ItemIds

__all__ = ["EmbeddingStore", "LiveRows", "Lookup", "as_item_id", "as_item_ids"]


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
        self._live: dict[bool, LiveRows] = {}
        self._live_ids: np.ndarray | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls, store_dir: str | Path, generation: str, *, spec: dict[str, Any] | None = None
    ) -> EmbeddingStore:
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
        for attempt in range(
            3
        ):  # a compaction may delete shards between reading the manifest and opening them
            manifest = read_manifest(root, generation)
            if spec is not None and not same_spec(spec, manifest.spec):
                raise ShardCorrupt(
                    f"The store of {generation!r} was written with spec {manifest.spec}, but the registry "
                    f"says {spec}; it cannot be read as this generation. Re-run the backfill."
                )
            try:
                shards = [
                    open_shard(
                        root / "shards" / e.name,
                        generation=generation,
                        spec=manifest.spec,
                        header_sha256=e.header_sha256,
                        listed=(e.seq, e.kind, e.rows),
                    )
                    for e in manifest.shards
                ]
            except ShardCorrupt:
                if attempt < 2 and read_manifest(root, generation).version != manifest.version:
                    continue
                raise
            return cls(root, manifest, shards)
        raise AssertionError("unreachable")

    def refresh(self) -> EmbeddingStore:
        """This store at its latest committed version (``self`` when nothing changed).

        A store whose manifest version is the same but one of whose shard files changed on disk since it was
        opened (:meth:`changed_files`) is opened again, so every block is verified again before it is served.
        """
        if (
            read_manifest(self.root, self.generation).version == self.manifest.version
            and not self.changed_files()
        ):
            return self
        return EmbeddingStore.open(self.root.parent, self.generation)

    def changed_files(self) -> list[str]:
        """``<shard>/<file>`` of every shard file replaced, resized or written to since this store was opened
        (compared by ``(st_ino, st_size, st_mtime_ns, st_ctime_ns)``; one ``stat`` per file)."""
        return [f"{s.path.name}/{name}" for s in self._all for name in s.changed_files()]

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
        return int(self.live_ids().size)

    # ------------------------------------------------------------------ lookup
    def lookup(self, ids: ItemIds) -> Lookup:
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
            if n == 0 or sq[-1] < s.header.min_id or sq[0] > s.header.max_id:
                continue
            pos = _checked_positions(s, sq)
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
        self, ids: ItemIds, *, with_vectors: bool = False, skip_missing: bool = False
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
                _gather(self._data[0], loc.row, codes, vectors, slice(None))
        else:
            for i, s in enumerate(self._data):
                sel = np.flatnonzero(loc.shard == i)
                if sel.size:
                    _gather(s, loc.row[sel], codes, vectors, sel)
        return loc.ids, codes, vectors

    def get_one(self, item_id: int, *, with_vector: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Code (and float16 vector) of one id: the single-item fast path of :meth:`get`.

        Raises:
            ItemNotFound: the id is absent or deleted.
            InvalidItemId: *item_id* is not a 64-bit signed integer.
            ShardCorrupt: a block read fails its checksum.
        """
        if type(item_id) is not int or not _INT64_MIN <= item_id <= _INT64_MAX:
            item_id = as_item_id(item_id)
        for s in self._newest_first:
            h = s.header
            if h.rows and h.min_id <= item_id <= h.max_id:  # type: ignore[operator]
                pos = _find(s, item_id)
                if pos < 0:
                    continue
                if s.codes is None:  # tombstone
                    break
                check = s.checks[CODES]
                if not check.verified[pos // check.block_rows]:
                    check.row(pos)
                vec = None
                if with_vector and s.vectors is not None:
                    s.checks[VECTORS].row(pos)
                    vec = s.vectors[pos].copy()
                return s.codes[pos].copy(), vec  # a copy: never a view of bytes that may change on disk
        raise ItemNotFound([item_id], self.generation)

    def contains(self, ids: ItemIds) -> np.ndarray:
        """Boolean mask: which of *ids* are live in this store."""
        return self.lookup(ids).found

    # ------------------------------------------------------------------ whole-store views
    def live(self, *, with_vectors: bool = True) -> LiveRows:
        """All live rows sorted by id, every byte verified against its checksum first.

        Zero-copy memory maps when the store is one compacted data shard. ``with_vectors=False`` leaves the
        float16 vectors out (and unverified): what a search index needs.

        Raises:
            ShardCorrupt: some block fails its checksum.
        """
        if with_vectors in self._live:
            return self._live[with_vectors]
        if True in self._live:  # vectors were verified already; leave them out
            full = self._live[True]
            return LiveRows(full.ids, full.codes, None)
        self.verify_all(vectors=with_vectors)
        if len(self._all) == 1 and self._all[0].header.kind == "data":
            s = self._all[0]
            rows = LiveRows(s.ids, s.codes, s.vectors if with_vectors else None)  # type: ignore[arg-type]
        elif not self._data:
            rows = LiveRows(np.empty(0, np.int64), np.empty((0, self.code_bytes), np.uint8), None)
        else:
            all_ids = np.unique(np.concatenate([s.ids for s in self._all]))
            rows = LiveRows(*self.get(all_ids, with_vectors=with_vectors, skip_missing=True))
        self._live[with_vectors] = rows
        return rows

    def live_ids(self) -> np.ndarray:
        """Sorted int64 ids of every live item (only the ids are read and verified)."""
        if self._live:
            return next(iter(self._live.values())).ids
        if self._live_ids is None:
            for s in self._all:
                s.check(IDS).all()
            if len(self._all) == 1 and self._all[0].header.kind == "data":
                self._live_ids = self._all[0].ids
            elif not self._data:
                self._live_ids = np.empty(0, np.int64)
            else:
                all_ids = np.unique(np.concatenate([s.ids for s in self._all]))
                self._live_ids = all_ids[self.lookup(all_ids).found]
        return self._live_ids

    def verify_all(self, *, vectors: bool = True) -> None:
        """Verify every block of every shard (of all but the vectors unless *vectors*); cheap once done.

        Raises:
            ShardCorrupt: a block fails its checksum.
        """
        for s in self._all:
            s.verify_all(vectors=vectors)

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
        return {
            "generation": m.generation,
            "spec": m.spec,
            "root": str(self.root),
            "version": m.version,
            "updated_at": m.updated_at,
            "items": len(self),
            "has_vectors": self.has_vectors,
            "shards": [
                {**e.to_dict(), "bytes": sum(int(f["bytes"]) for f in s.header.files.values())}
                for e, s in zip(m.shards, self._all)
            ],
        }


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def as_item_id(item_id: Any) -> int:
    """One item id as a Python int, refusing bools, non-integers and anything outside int64.

    Raises:
        InvalidItemId: *item_id* is not a 64-bit signed integer.
    """
    if isinstance(item_id, (bool, np.bool_)) or not isinstance(item_id, (int, np.integer)):
        raise InvalidItemId(f"Item ids must be 64-bit integers, not {type(item_id).__name__} ({item_id!r}).")
    value = int(item_id)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidItemId(f"Item ids must be 64-bit integers: {value} is outside [-2**63, 2**63 - 1].")
    return value


def as_item_ids(ids: Any) -> np.ndarray:
    """*ids* as a 1-D int64 array; floats, bools, strings and values outside int64 are refused (never wrapped).

    A 0-d array is one id; masked arrays and arrays of two or more dimensions are refused (never flattened).

    Raises:
        InvalidItemId: the ids are not 64-bit signed integers, or not a plain 1-D sequence of them.
    """
    if isinstance(ids, np.ma.MaskedArray):  # a masked entry has no id; filling it in would invent one
        raise InvalidItemId(
            "Item ids must be a plain 1-D array of 64-bit integers, not a masked array; drop the masked "
            "entries first (ids.compressed())."
        )
    if isinstance(ids, np.ndarray):
        a = np.asarray(ids)  # a subclass (np.matrix) as a plain array
    elif isinstance(ids, (int, np.integer, bool, np.bool_, float, str)):
        return np.array([as_item_id(ids)], dtype=np.int64)
    else:
        try:
            a = np.asarray(ids)
        except (TypeError, ValueError, OverflowError):
            a = np.asarray(ids, dtype=object)
        if a.dtype.kind != "i" and a.size:  # numpy widened to uint64/float/object: check each value exactly
            a = np.asarray(ids, dtype=object)
    if a.ndim > 1:  # never flattened silently: [[3, 4], [5, 6]] is not a list of ids
        raise InvalidItemId(
            f"Item ids must be a 1-D sequence of 64-bit integers; got an array of shape {a.shape}."
        )
    if a.dtype.kind == "i" or a.size == 0:
        return a.astype(np.int64, copy=False).reshape(-1)
    if a.dtype == object:
        return np.array([as_item_id(i) for i in a.reshape(-1).tolist()], dtype=np.int64)
    if a.dtype.kind != "u":
        raise InvalidItemId(
            f"Item ids must be 64-bit integers; got {a.dtype} values such as {a.reshape(-1)[:3]!r}."
        )
    if bool((a > _INT64_MAX).any()):
        raise InvalidItemId(
            f"Item ids must be 64-bit integers: {int(a[a > _INT64_MAX].reshape(-1)[0])} is outside "
            "[-2**63, 2**63 - 1]."
        )
    return a.astype(np.int64).reshape(-1)


def _find(s: ShardArrays, item_id: int) -> int:
    """Row of *item_id* in shard *s* (-1 when absent), found on ids verified against their checksums.

    A damaged id elsewhere can at worst misdirect the binary search; the verified neighbours then disagree
    with the answer and the shard is refused, so a wrong row is never taken for *item_id*.
    """
    ids, n, check = s.ids, s.header.rows, s.checks[IDS]
    pos = int(ids.searchsorted(item_id))
    if pos < n:
        if not check.verified[pos // check.block_rows]:
            check.row(pos)
        if ids[pos] == item_id:
            return pos
    if pos:
        check.row(pos - 1)
    if (pos and not ids[pos - 1] < item_id) or (pos < n and not item_id < ids[pos]):
        raise _misplaced(s)
    return -1


def _checked_positions(s: ShardArrays, sorted_ids: np.ndarray) -> np.ndarray:
    """Like :func:`_find` for many sorted query ids: ``searchsorted`` positions, neighbours verified."""
    ids, n, check = s.ids, s.header.rows, s.checks[IDS]
    pos = np.searchsorted(ids, sorted_ids)
    inside = pos < n
    check.rows(pos[inside])
    after = pos > 0
    check.rows(pos[after] - 1)
    if (
        not (ids[pos[after] - 1] < sorted_ids[after]).all()
        or not (sorted_ids[inside] <= ids[pos[inside]]).all()
    ):
        raise _misplaced(s)
    return pos


def _misplaced(s: ShardArrays) -> ShardCorrupt:
    return ShardCorrupt(
        f"Shard {s.path.name}: ids.npy is not sorted around a looked-up id (damaged); nothing is "
        "served from this shard. Run: emb store verify"
    )


def _gather(
    s: ShardArrays, rows: np.ndarray, codes: np.ndarray, vectors: np.ndarray | None, out: Any
) -> None:
    """Copy verified rows of shard *s* into ``codes[out]`` (and ``vectors[out]``)."""
    s.checks[CODES].rows(rows)
    codes[out] = s.codes[rows]  # type: ignore[index]
    if vectors is not None:
        s.checks[VECTORS].rows(rows)
        vectors[out] = s.vectors[rows]  # type: ignore[index]
