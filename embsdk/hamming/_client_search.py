"""Search methods of :class:`embsdk.client.Client` (a mixin, kept apart so each module stays small).

Exact search builds a faiss ``IndexBinaryFlat`` over the store's live codes, cached per store state;
approximate search loads a saved HNSW/IVF index from the store folder or the generation's registry
artifacts and refuses one built before the store's latest commit.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embsdk.errors import (
    DefaultAliasNotSet,
    DeprecatedGenerationWarning,
    GenerationNotFound,
    IndexMissing,
    IndexStale,
    StoreError,
)
from embsdk.hamming.query import MAX_K, QueryLike, check_k, to_query
from embsdk.store._indexes import index_corrupt
from embsdk.store._manifest import GenerationLock, read_manifest, write_manifest
from embsdk.store.reader import EmbeddingStore
from embsdk.types import Embedding, SearchResult

if TYPE_CHECKING:
    from embsdk.client import Resolved
    from embsdk.hamming.index import BinaryIndex

__all__ = ["DEFAULT_VERSION", "DefaultAliasNotSet", "SearchMixin", "default_alias_error"]

DEFAULT_VERSION = "production"
"""What every SDK call and ``emb`` command uses when no version is given: the ``production`` alias (as the
Hub defaults to ``main``), so a caller follows the generation in production without naming it."""


def default_alias_error(version: str, exc: GenerationNotFound) -> GenerationNotFound:
    """The error to raise for *exc* (the registry knows no *version*): :class:`DefaultAliasNotSet` when
    *version* is the default alias, else *exc* itself."""
    if version == DEFAULT_VERSION and getattr(exc, "name", None) == DEFAULT_VERSION:
        return DefaultAliasNotSet(version)
    return exc


class SearchMixin:
    """Hamming search over a generation's store; needs ``resolve``, ``_store`` and ``registry`` from Client."""

    use_registry: bool
    registry_url: str
    store_dir: Path
    embed_url: str | None
    embed_protocol: Literal["http", "grpc"]
    _lock: threading.RLock
    _indexes: dict[tuple[str, str], Any]
    registry: Any

    def resolve(self, version: str) -> Resolved:  # provided by Client
        raise NotImplementedError

    def _store(self, res: Any) -> EmbeddingStore:  # provided by Client
        raise NotImplementedError

    def get_embedding(
        self, item_id: int, version: str = DEFAULT_VERSION, *, with_vector: bool = False
    ) -> Embedding:
        raise NotImplementedError  # provided by Client

    def index(self, version: str = DEFAULT_VERSION, *, kind: str = "flat") -> BinaryIndex:
        """The :class:`~embsdk.hamming.BinaryIndex` used for *kind* searches (cached per store state).

        ``flat`` is built in memory from the store; ``hnsw``/``ivf`` are loaded from the saved artifact.

        Raises:
            IndexMissing: no saved index of that kind (build it with :meth:`build_index`).
            IndexStale: the saved index predates the store's latest commit.
            IndexCorrupt: the saved index fails its checksums or does not list the store's live ids.
        """
        res = self.resolve(version)
        return self._index(res, self._store(res), kind)

    def _index(self, res: Resolved, store: EmbeddingStore, kind: str) -> BinaryIndex:
        """:meth:`index` for an already resolved generation (resolving twice would warn twice)."""
        from embsdk.hamming.index import INDEX_KINDS, BinaryIndex

        if kind != "flat" and kind not in INDEX_KINDS:  # also never a path: the kind names a folder
            raise StoreError(f"Unknown index kind {kind!r}; choose one of {sorted(INDEX_KINDS)}.")
        key = (res.name, kind)
        cached = self._indexes.get(key)
        if cached is not None and cached.state_token == store.manifest.state_token:
            return cached
        if kind == "flat":
            live = store.live(with_vectors=False)  # every code verified against its checksum first
            ix = BinaryIndex.build(
                live.codes,
                live.ids,
                generation=res.name,
                bits=store.bits,
                kind="flat",
                state_token=store.manifest.state_token,
            )
        else:
            ix = self._load_index(res.name, kind, store)
            if ix.state_token != store.manifest.state_token:
                raise IndexStale(res.name, kind)
            # the last link of the trust chain (embsdk.store._indexes): exactly the store's live ids
            ix.check_ids(store.live_ids(), where=store.root / "indexes" / kind / "ids.npy")
        with self._lock:
            self._indexes[key] = ix
        return ix

    def _load_index(self, generation: str, kind: str, store: EmbeddingStore) -> BinaryIndex:
        """The saved index: from the store folder, else from the generation's registry artifacts."""
        from embsdk.hamming.index import BinaryIndex

        folder = store.root / "indexes" / kind
        recorded = store.manifest.indexes.get(kind)
        if recorded is None and (folder / "meta.json").is_file():
            raise index_corrupt(
                folder,
                "not recorded in the store's MANIFEST.json (saved by an older embsdk, or copied in)",
                generation=generation,
                kind=kind,
            )
        try:
            return BinaryIndex.load(
                folder, generation=generation, bits=store.bits, kind=kind, meta_sha256=recorded
            )
        except IndexMissing:
            if not self.use_registry:
                raise
        names = [f"index/{kind}/{f}" for f in ("index.faissbin", "ids.npy", "meta.json")]
        info = self.registry.get(generation)
        try:
            for n in names:
                info.artifact(n)
        except KeyError:
            raise IndexMissing(generation, kind) from None
        paths = [self.registry.artifact_path(generation, n, verify=True) for n in names]
        # the registry checked each blob's sha256; meta.json's own file checksums are checked when present
        return BinaryIndex.load_files(
            *paths, generation=generation, bits=store.bits, kind=kind, require_checksums=False
        )

    def build_index(
        self, version: str = DEFAULT_VERSION, *, kind: str = "hnsw", publish: bool = False, **params: Any
    ) -> BinaryIndex:
        """Build an approximate index over the store's live codes, save it under ``indexes/<kind>/`` and
        (with ``publish``) register its files as artifacts of the generation."""
        from embsdk.hamming.index import BinaryIndex

        res = self.resolve(version)
        store = self._store(res).refresh()
        live = store.live(with_vectors=False)
        ix = BinaryIndex.build(
            live.codes,
            live.ids,
            generation=res.name,
            bits=store.bits,
            kind=kind,
            state_token=store.manifest.state_token,
            **params,
        )
        # the index's files and their record in MANIFEST.json are written under the generation's writer lock
        # (StoreLocked while a backfill or compaction runs): the manifest has one writer at a time
        with GenerationLock(store.root, res.name):
            files = ix.save(store.root / "indexes" / kind)
            m = read_manifest(store.root, res.name)
            write_manifest(store.root, m.with_index(kind, ix.meta_sha256))
        if publish:
            from embsdk.store.publish import publish_files

            publish_files(self.registry, res.name, [(f"index/{kind}/{f.name}", f) for f in files])
        with self._lock:
            self._indexes[(res.name, kind)] = ix
        return ix

    def search(
        self,
        query: QueryLike,
        version: str = DEFAULT_VERSION,
        *,
        k: int = 10,
        exact: bool = True,
        rerank: bool = False,
        kind: str = "hnsw",
        candidates: int | None = None,
        exclude_self: bool = False,
    ) -> SearchResult:
        """Nearest items by Hamming distance to *query* (an id, an Embedding, a packed code, or an image path).

        Args:
            version: generation name or alias (default: the ``production`` alias).
            k: how many results: an integer from 1 to ``MAX_K`` (10,000); fewer when the store holds fewer.
            exclude_self: leave the query item out of the results (a query by id, or an Embedding with an
                ``item_id``), still returning *k* hits; ``emb search`` does this unless ``--include-self``.
            exact: faiss ``IndexBinaryFlat`` (exact); False uses the saved approximate index of *kind*.
            rerank: re-order the top ``candidates`` (default ``max(10 k, 100)``) by cosine similarity of the
                stored float16 vectors; needs vectors in the store and for the query.

        Raises:
            InvalidTopK: *k* (or *candidates*) is not an integer in range (checked before anything is read).
            IncompatibleGenerationError, CodeLengthError, ItemNotFound, InvalidItemId, GenerationNotFound,
            IndexMissing, ShardCorrupt.
        """
        k = check_k(k)
        if candidates is not None:
            candidates = check_k(candidates, name="candidates", limit=10 * MAX_K)
        res = self.resolve(version)
        store = self._store(res)
        q = to_query(
            query,
            generation=res.name,
            bits=store.bits,
            fetch=lambda i: _stored_embedding(store, res.name, i, with_vector=rerank),
            embed_image=lambda p: self._embed_one(p, res.name, with_vector=rerank),
        )
        ix = self._index(res, store, "flat" if exact else kind)
        skip = q.item_id if exclude_self else None
        if not rerank:
            ((ids, dist),) = ix.hits(q.code, k + (skip is not None), limit=MAX_K + 1)
            if skip is not None:
                keep = ids != skip
                ids, dist = ids[keep][:k], dist[keep][:k]
            return SearchResult(res.name, ids, dist)
        if q.vector is None:
            raise StoreError(
                "Re-ranking needs the query's float vector: search by item id, or pass an Embedding "
                "with .vector (get_embedding(..., with_vector=True))."
            )
        if not store.has_vectors:
            raise StoreError(
                f"The store of {res.name!r} holds no float vectors to re-rank with; backfill with vectors."
            )
        from embsdk.hamming.rerank import cosine_rerank

        ((cand, cdist),) = ix.hits(
            q.code, max(10 * k, 100) if candidates is None else max(candidates, k), limit=10 * MAX_K
        )
        if skip is not None:
            keep = cand != skip
            cand, cdist = cand[keep], cdist[keep]
        _, _, vecs = store.get(cand, with_vectors=True)
        top, scores = cosine_rerank(q.vector, cand, vecs, k)  # type: ignore[arg-type]
        hd = dict(zip(cand.tolist(), cdist.tolist()))
        return SearchResult(res.name, top, np.array([hd[int(i)] for i in top], np.int32), scores)

    def search_batch(
        self,
        codes: np.ndarray,
        version: str = DEFAULT_VERSION,
        *,
        k: int = 10,
        exact: bool = True,
        kind: str = "hnsw",
    ) -> list[SearchResult]:
        """Search many packed codes (Q, B) at once (one faiss call); *k* as in :meth:`search`."""
        k = check_k(k)
        res = self.resolve(version)
        q = np.ascontiguousarray(codes, dtype=np.uint8)
        hits = self._index(res, self._store(res), "flat" if exact else kind).hits(np.atleast_2d(q), k)
        return [SearchResult(res.name, ids, dist) for ids, dist in hits]

    def _embed_one(self, path: str, generation: str, *, with_vector: bool) -> Embedding:
        kwargs: dict[str, Any] = {"registry_url": self.registry_url} if self.use_registry else {}
        from embsdk.embed import embed

        with warnings.catch_warnings():  # search() already warned about this generation once
            warnings.simplefilter("ignore", DeprecatedGenerationWarning)
            out = embed(
                [path],
                version=generation,
                url=self.embed_url,
                protocol=self.embed_protocol,
                return_float=with_vector,
                **kwargs,
            )
        return out[0]


def _stored_embedding(
    store: EmbeddingStore, generation: str, item_id: int, *, with_vector: bool
) -> Embedding:
    """An item's stamped code read from an already opened *store* (the query of a search by id)."""
    code, vector = store.get_one(item_id, with_vector=with_vector)
    return Embedding(code, store.bits, generation, int(item_id), vector)
