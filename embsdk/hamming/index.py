"""faiss binary indexes behind one small class: build (flat / hnsw / ivf), search, save and load.

Indexes are saved with ``faiss.serialize_index_binary`` next to an ``ids.npy`` (position → item id) and a
``meta.json`` recording the size and sha256 of both; loading reads each file once, checks it, and only then
hands the bytes to ``faiss.deserialize_index_binary`` and ``np.load(allow_pickle=False)``: nothing is ever
unpickled, and no unchecked byte reaches faiss (the trust chain: :mod:`embsdk.store._indexes`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk._fileio import fsync_dir, fsync_tree
from embsdk.errors import (
    CodeLengthError,
    IncompatibleGenerationError,
    IndexMissing,
    MissingExtraError,
    StoreError,
)
from embsdk.hamming.query import MAX_K, check_k
from embsdk.store._indexes import (
    IDS_FILE,
    INDEX_FILE,
    INDEX_FORMAT,
    META_FILE,
    check_ids,
    file_record,
    index_corrupt,
    read_index_files,
)

__all__ = ["INDEX_KINDS", "BinaryIndex", "import_faiss", "register_index_kind"]


def import_faiss() -> Any:
    """Import faiss lazily; a missing install names the pip extra."""
    try:
        import faiss
    except ModuleNotFoundError:
        raise MissingExtraError("faiss-cpu", "search") from None
    return faiss


# --------------------------------------------------------------------------- builders, by kind
_Builder = Callable[[Any, int, np.ndarray, dict[str, Any]], Any]
INDEX_KINDS: dict[str, _Builder] = {}


def register_index_kind(name: str) -> Callable[[_Builder], _Builder]:
    """Decorator: register a function ``(faiss, bits, codes, params) -> faiss.IndexBinary`` under *name*."""

    def deco(fn: _Builder) -> _Builder:
        INDEX_KINDS[name] = fn
        return fn

    return deco


@register_index_kind("flat")
def _flat(faiss: Any, bits: int, codes: np.ndarray, params: dict[str, Any]) -> Any:
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes)
    return index


@register_index_kind("hnsw")
def _hnsw(faiss: Any, bits: int, codes: np.ndarray, params: dict[str, Any]) -> Any:
    index = faiss.IndexBinaryHNSW(bits, int(params.get("M", 32)))
    index.hnsw.efConstruction = int(params.get("ef_construction", 64))
    index.hnsw.efSearch = int(params.get("ef_search", 128))
    index.add(codes)
    return index


@register_index_kind("ivf")
def _ivf(faiss: Any, bits: int, codes: np.ndarray, params: dict[str, Any]) -> Any:
    nlist = int(params.get("nlist") or max(1, min(65536, int(np.sqrt(len(codes))))))
    quantizer = faiss.IndexBinaryFlat(bits)
    index = faiss.IndexBinaryIVF(quantizer, bits, nlist)
    index.own_fields = True
    quantizer.this.disown()  # the IVF index owns and frees its quantizer
    sample = np.random.default_rng(0).permutation(len(codes))[
        : max(nlist * 40, 10000)
    ]  # faiss wants >= 39 / list
    index.train(codes[np.sort(sample)])
    index.add(codes)
    index.nprobe = int(params.get("nprobe", 16))
    return index


def _apply_search_params(index: Any, kind: str, params: dict[str, Any]) -> None:
    if kind == "hnsw" and "ef_search" in params:
        index.hnsw.efSearch = int(params["ef_search"])
    if kind == "ivf" and "nprobe" in params:
        index.nprobe = int(params["nprobe"])


@dataclass
class BinaryIndex:
    """A faiss binary index over one generation's live codes, with the id of every position.

    Attributes:
        index: the ``faiss.IndexBinary``.
        ids: int64 item id of each index position.
        generation, bits: what the codes are.
        kind: ``flat`` (exact), ``hnsw`` or ``ivf`` (approximate).
        state_token: the store state the index was built from (``StoreManifest.state_token``).
    """

    index: Any
    ids: np.ndarray
    generation: str
    bits: int
    kind: str
    state_token: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    meta_sha256: str = ""
    """sha256 of the ``meta.json`` this index was saved as or loaded from (what ``MANIFEST.json`` records)."""

    @property
    def code_bytes(self) -> int:
        return (self.bits + 7) // 8

    def __len__(self) -> int:
        return int(self.ids.size)

    @classmethod
    def build(
        cls,
        codes: np.ndarray,
        ids: np.ndarray,
        *,
        generation: str,
        bits: int,
        kind: str = "flat",
        state_token: str = "",
        **params: Any,
    ) -> BinaryIndex:
        """Build an index of *kind* over packed *codes* (N, ceil(bits/8)) whose item ids are *ids*."""
        if kind not in INDEX_KINDS:
            raise StoreError(f"Unknown index kind {kind!r}; choose one of {sorted(INDEX_KINDS)}.")
        faiss = import_faiss()
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if bits % 8:
            raise StoreError(f"faiss binary indexes need a multiple of 8 bits; {generation!r} has {bits}.")
        if codes.ndim != 2 or codes.shape[1] != bits // 8:
            raise CodeLengthError(codes.shape[-1], bits // 8, generation)
        index = INDEX_KINDS[kind](faiss, bits, codes, params)
        return cls(
            index,
            np.ascontiguousarray(ids, dtype=np.int64),
            generation,
            bits,
            kind,
            state_token,
            dict(params),
        )

    def search(self, queries: np.ndarray, k: int, **params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Top-*k* per query → (item ids int64 (Q, k), Hamming distances int32 (Q, k)).

        Slots beyond the index size hold id -1 and distance -1; since -1 is also a valid item id, use
        :meth:`hits` to get only the slots that were filled.

        Raises:
            InvalidTopK: *k* is not an integer from 1 to :data:`~embsdk.hamming.query.MAX_K`.
            CodeLengthError: the queries have the wrong number of bytes.
        """
        k = check_k(k)
        pos, dist = self._search_rows(queries, k, params)
        ids = np.full((pos.shape[0], k), -1, np.int64)
        out_d = np.full((pos.shape[0], k), -1, np.int32)
        filled = pos >= 0
        ids[:, : pos.shape[1]][filled] = self.ids[pos[filled]]
        out_d[:, : pos.shape[1]][filled] = dist[filled]
        return ids, out_d

    def hits(
        self, queries: np.ndarray, k: int, *, limit: int = MAX_K, **params: Any
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the filled top-*k* slots → ``(item ids int64, Hamming distances int32)`` by distance.

        Empty slots (fewer than *k* items) are told by faiss's row position (-1), never by the id, so negative
        item ids are returned like any other.

        Raises:
            InvalidTopK: *k* is not an integer from 1 to *limit*.
            CodeLengthError: the queries have the wrong number of bytes.
        """
        pos, dist = self._search_rows(queries, check_k(k, limit=limit), params)
        out = []
        for p, d in zip(pos, dist):
            filled = p >= 0
            out.append((self.ids[p[filled]], d[filled].astype(np.int32, copy=False)))
        return out

    def _search_rows(
        self, queries: np.ndarray, k: int, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss positions (-1 = empty slot) and distances, asking faiss for at most ``len(self)`` results."""
        q = np.ascontiguousarray(queries, dtype=np.uint8)
        if q.ndim == 1:
            q = q[None]
        if q.shape[1] != self.code_bytes:
            raise CodeLengthError(q.shape[1], self.code_bytes, self.generation)
        kk = min(k, int(self.index.ntotal))
        if kk == 0:
            return np.empty((q.shape[0], 0), np.int64), np.empty((q.shape[0], 0), np.int32)
        if params:
            _apply_search_params(self.index, self.kind, params)
        dist, pos = self.index.search(q, kk)
        return pos, dist

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> list[Path]:
        """Write ``index.faissbin``, ``ids.npy``, ``meta.json`` into *folder* atomically (tmp folder + rename).

        ``meta.json`` records the size and sha256 of the other two; its own sha256 is :attr:`meta_sha256`,
        which the caller records where it is trusted (``emb store index``: the store's ``MANIFEST.json``).
        """
        faiss = import_faiss()
        folder = Path(folder)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        data = {
            INDEX_FILE: faiss.serialize_index_binary(self.index).tobytes(),
            IDS_FILE: _npy_bytes(np.ascontiguousarray(self.ids, dtype=np.int64)),
        }
        for name, raw in data.items():
            (tmp / name).write_bytes(raw)
        meta = {
            "format": INDEX_FORMAT,
            "generation": self.generation,
            "bits": self.bits,
            "kind": self.kind,
            "items": len(self),
            "state_token": self.state_token,
            "params": self.params,
            "files": {name: file_record(raw) for name, raw in data.items()},
        }
        raw_meta = json.dumps(meta, indent=1, sort_keys=True).encode()
        (tmp / META_FILE).write_bytes(raw_meta)
        fsync_tree(tmp)
        old = folder.with_name(folder.name + f".old{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
        shutil.rmtree(old, ignore_errors=True)
        self.meta_sha256 = hashlib.sha256(raw_meta).hexdigest()
        return [folder / INDEX_FILE, folder / IDS_FILE, folder / META_FILE]

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        generation: str,
        bits: int,
        kind: str,
        meta_sha256: str | None = None,
    ) -> BinaryIndex:
        """Load an index saved by :meth:`save` in *folder* (no unpickling); see :meth:`load_files`.

        Args:
            meta_sha256: the sha256 of ``meta.json`` recorded where it is trusted (the store's
                ``MANIFEST.json``); checked before anything else is read.

        Raises:
            IndexMissing: nothing saved in *folder*.
            IndexCorrupt: see :meth:`load_files`.
        """
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise IndexMissing(generation, kind)
        return cls.load_files(
            folder / INDEX_FILE,
            folder / IDS_FILE,
            folder / META_FILE,
            generation=generation,
            bits=bits,
            kind=kind,
            meta_sha256=meta_sha256,
        )

    @classmethod
    def load_files(
        cls,
        index_file: Path,
        ids_file: Path,
        meta_file: Path,
        *,
        generation: str,
        bits: int,
        kind: str,
        meta_sha256: str | None = None,
        require_checksums: bool = True,
    ) -> BinaryIndex:
        """Load an index from its three files (e.g. registry artifact blobs) and check it belongs to *generation*.

        Each file is read once and checked (``meta.json`` against *meta_sha256* when given, the other two
        against the sizes and sha256 ``meta.json`` records) before faiss or numpy parse it; a faiss
        deserialization error is reported as damage. Nothing is unpickled.

        Args:
            require_checksums: refuse a ``meta.json`` without file checksums (False only for copies whose
                bytes were checked otherwise, e.g. registry artifacts verified by their sha256).

        Raises:
            IncompatibleGenerationError: it was built for another generation.
            IndexCorrupt (a ShardCorrupt): it is damaged, or does not match *bits* / its ids.
        """
        checked = read_index_files(
            Path(index_file),
            Path(ids_file),
            Path(meta_file),
            generation=generation,
            kind=kind,
            meta_sha256=meta_sha256,
            require_checksums=require_checksums,
        )
        meta, ids = checked.meta, checked.ids
        if meta.get("generation") != generation:
            raise IncompatibleGenerationError(str(meta.get("generation")), generation)
        faiss = import_faiss()
        try:
            index = faiss.deserialize_index_binary(np.frombuffer(checked.index_bytes, np.uint8))
        except (RuntimeError, MemoryError, ValueError, OverflowError, TypeError, IndexError) as exc:
            raise index_corrupt(
                index_file,
                f"faiss cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                generation=generation,
                kind=kind,
            ) from None
        try:
            meta_bits = int(meta.get("bits", -1))
        except (TypeError, ValueError):
            meta_bits = -1
        if meta_bits != bits or index.d != bits or index.ntotal != ids.size:
            raise index_corrupt(
                index_file,
                f"does not match {generation!r} ({bits} bits, {ids.size} ids; meta.json says {meta_bits} "
                f"bits, the index has d={index.d}, ntotal={index.ntotal})",
                generation=generation,
                kind=kind,
            )
        params = meta.get("params", {})
        return cls(
            index,
            ids,
            generation,
            bits,
            str(meta.get("kind", kind)),
            str(meta.get("state_token", "")),
            dict(params) if isinstance(params, dict) else {},
            checked.meta_sha256,
        )

    def check_ids(self, live_ids: np.ndarray, *, where: str | Path = "") -> None:
        """Refuse this index unless its ids are exactly *live_ids* (the sorted live ids of the store state it
        was built for, read from the shards' verified ids).

        Raises:
            IndexCorrupt: an id that is not live, a live id missing, or ids out of order.
        """
        check_ids(self.ids, live_ids, path=where or IDS_FILE, generation=self.generation, kind=self.kind)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
