"""The SDK entry points: fetch an item's stamped code by id and generation, and search by Hamming distance.

    >>> import embsdk
    >>> e = embsdk.get_embedding(123, version="unified-v1")                    # doctest: +SKIP
    >>> embsdk.search(e, version="unified-v1", k=10).ids                       # doctest: +SKIP

Module-level functions use a cached default :class:`Client` configured by ``get_settings()``
(``EMB_HOME``, ``EMB_REGISTRY_URL``, ``EMB_STORE``). Imports numpy only; the registry (SQLAlchemy) and
faiss load on first use; torch never.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.config import get_settings
from embsdk.errors import (
    DeprecatedGenerationWarning,
    GenerationNotFound,
    InferenceError,
    RetiredGeneration,
    StoreError,
    StoreNotFound,
)
from embsdk.hamming.query import QueryLike, to_query
from embsdk.store._manifest import generation_root, read_manifest
from embsdk.store.batch import EmbeddingBatch
from embsdk.store.reader import EmbeddingStore
from embsdk.types import Embedding, SearchResult

__all__ = [
    "DEFAULT_VERSION",
    "Client",
    "EmbeddingBatch",
    "Resolved",
    "embed",
    "get_embedding",
    "get_embeddings",
    "search",
    "search_batch",
]

DEFAULT_VERSION = "unified-v1"


@dataclass(frozen=True)
class Resolved:
    """A version resolved through the registry: generation name, embedding spec (None if unknown), status."""

    name: str
    spec: dict[str, Any] | None
    status: str | None
    requested: str


class Client:
    """Explicitly configured access to the registry and the embedding store.

    Args:
        registry_url: SQLAlchemy URL of the registry (default: ``EMB_REGISTRY_URL`` / the SQLite file in EMB_HOME).
        store: embedding store folder (default ``EMB_STORE``).
        use_registry: False to read the store standalone (``version`` must then be a generation name).
        resolve_ttl: seconds a resolved alias and an opened store are reused before checking again (0: every call).
        embed_url, embed_protocol: Triton server that embeds image queries (None: in-process ONNX Runtime).

    Example:
        >>> c = Client(registry_url="sqlite:///reg.db", store="/data/store")       # doctest: +SKIP
        >>> c.get_embeddings([1, 2, 3], version="production").codes.shape        # doctest: +SKIP
    """

    def __init__(self, registry_url: str | None = None, store: str | Path | None = None, *,
                 use_registry: bool = True, resolve_ttl: float = 5.0, embed_url: str | None = None,
                 embed_protocol: str = "http") -> None:
        settings = get_settings()
        self.registry_url = registry_url or settings.registry_url
        self.store_dir = Path(store).expanduser() if store is not None else settings.store_dir
        self.use_registry = use_registry
        self.resolve_ttl = resolve_ttl
        self.embed_url, self.embed_protocol = embed_url, embed_protocol
        self._registry: Any = None
        self._lock = threading.RLock()
        self._resolved: dict[str, tuple[Resolved, float]] = {}
        self._stores: dict[str, tuple[EmbeddingStore, float]] = {}
        self._indexes: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ registry and store
    @property
    def registry(self) -> Any:
        """The ``registry.Registry`` (opened on first use)."""
        if self._registry is None:
            from registry import Registry

            self._registry = Registry(self.registry_url)
        return self._registry

    def resolve(self, version: str) -> Resolved:
        """Resolve a generation name or alias; warn if deprecated.

        Raises:
            GenerationNotFound: no such generation or alias (or, standalone, no store for it).
            RetiredGeneration: the generation is retired.
        (Opening its store later raises StoreNotFound when the generation has none.)
        """
        now = time.monotonic()
        hit = self._resolved.get(version)
        if hit is not None and now - hit[1] < self.resolve_ttl:
            res = hit[0]  # fast path: no lock, no I/O
        else:
            res = self._resolve_now(version)
            with self._lock:
                self._resolved[version] = (res, now)
        if res.status == "retired":
            raise RetiredGeneration(res.name)
        if res.status == "deprecated":
            warnings.warn(f"Generation {res.name!r} is deprecated; plan to move to its replacement "
                          f"(emb registry lineage {res.name}).", DeprecatedGenerationWarning, stacklevel=3)
        return res

    def _resolve_now(self, version: str) -> Resolved:
        if not self.use_registry:
            try:
                m = read_manifest(generation_root(self.store_dir, version), version)
            except StoreNotFound:
                raise GenerationNotFound(version, hint=f"Without a registry, --version must name a generation whose "
                                         f"store is in {self.store_dir}.") from None
            return Resolved(m.generation, m.spec, None, version)
        info = self.registry.resolve(version)
        return Resolved(info.name, info.embedding_spec, str(info.status), version)

    def open_store(self, version: str = DEFAULT_VERSION) -> EmbeddingStore:
        """The memory-mapped store of the resolved generation (cached; picks up new commits after ``resolve_ttl``)."""
        res = self.resolve(version)
        return self._store(res)

    def _store(self, res: Resolved) -> EmbeddingStore:
        now = time.monotonic()
        hit = self._stores.get(res.name)
        if hit is not None and now - hit[1] < self.resolve_ttl:
            return hit[0]
        if hit is not None and read_manifest(hit[0].root, res.name).version == hit[0].manifest.version:
            store = hit[0]
        else:
            store = EmbeddingStore.open(self.store_dir, res.name, spec=res.spec)
        with self._lock:
            self._stores[res.name] = (store, now)
        return store

    # ------------------------------------------------------------------ fetch
    def get_embedding(self, item_id: int, version: str = DEFAULT_VERSION, *, with_vector: bool = False) -> Embedding:
        """The stamped code of one item.

        Raises:
            ItemNotFound: the id is not in the store (never backfilled, or deleted).
            GenerationNotFound, RetiredGeneration: see :meth:`resolve`.
        """
        res = self.resolve(version)
        store = self._store(res)
        code, vector = store.get_one(int(item_id), with_vector=with_vector)
        return Embedding(code, store.bits, res.name, int(item_id), vector)

    def get_embeddings(self, ids: Any, version: str = DEFAULT_VERSION, *, skip_missing: bool = False,
                       with_vectors: bool = False) -> EmbeddingBatch:
        """Stamped codes of many items (vectorized), one row per id in the order given.

        Raises:
            ItemNotFound: some ids are absent and ``skip_missing`` is False (the error lists them).
        """
        res = self.resolve(version)
        store = self._store(res)
        got, codes, vectors = store.get(ids, with_vectors=with_vectors, skip_missing=skip_missing)
        return EmbeddingBatch(got, codes, store.bits, res.name, vectors)

    # ------------------------------------------------------------------ search
    def index(self, version: str = DEFAULT_VERSION, *, kind: str = "flat") -> Any:
        """The :class:`~embsdk.hamming.BinaryIndex` used for *kind* searches (cached per store state).

        ``flat`` is built in memory from the store; ``hnsw``/``ivf`` are loaded from the saved artifact.

        Raises:
            IndexMissing: no saved index of that kind (build it with :meth:`build_index`).
            IndexStale: the saved index predates the store's latest commit.
        """
        from embsdk.hamming.index import BinaryIndex

        res = self.resolve(version)
        store = self._store(res)
        key = (res.name, kind)
        cached = self._indexes.get(key)
        if cached is not None and cached.state_token == store.manifest.state_token:
            return cached
        if kind == "flat":
            live = store.live()
            ix = BinaryIndex.build(live.codes, live.ids, generation=res.name, bits=store.bits, kind="flat",
                                   state_token=store.manifest.state_token)
        else:
            from embsdk.errors import IndexStale

            ix = self._load_index(res.name, kind, store)
            if ix.state_token != store.manifest.state_token:
                raise IndexStale(res.name, kind)
        with self._lock:
            self._indexes[key] = ix
        return ix

    def _load_index(self, generation: str, kind: str, store: EmbeddingStore) -> Any:
        """The saved index: from the store folder, else from the generation's registry artifacts."""
        from embsdk.errors import IndexMissing
        from embsdk.hamming.index import BinaryIndex

        try:
            return BinaryIndex.load(store.root / "indexes" / kind, generation=generation, bits=store.bits, kind=kind)
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
        return BinaryIndex.load_files(*paths, generation=generation, bits=store.bits, kind=kind)

    def build_index(self, version: str = DEFAULT_VERSION, *, kind: str = "hnsw", publish: bool = False,
                    **params: Any) -> Any:
        """Build an approximate index over the store's live codes, save it under ``indexes/<kind>/`` and
        (with ``publish``) register its files as artifacts of the generation."""
        from embsdk.hamming.index import BinaryIndex

        res = self.resolve(version)
        store = self._store(res).refresh()
        live = store.live()
        ix = BinaryIndex.build(live.codes, live.ids, generation=res.name, bits=store.bits, kind=kind,
                               state_token=store.manifest.state_token, **params)
        files = ix.save(store.root / "indexes" / kind)
        if publish:
            from embsdk.store.publish import publish_files

            publish_files(self.registry, res.name, [(f"index/{kind}/{f.name}", f) for f in files])
        with self._lock:
            self._indexes[(res.name, kind)] = ix
        return ix

    def search(self, query: QueryLike, version: str = DEFAULT_VERSION, *, k: int = 10, exact: bool = True,
               rerank: bool = False, kind: str = "hnsw", candidates: int | None = None) -> SearchResult:
        """Nearest items by Hamming distance to *query* (an id, an Embedding, a packed code, or an image path).

        Args:
            k: how many results.
            exact: faiss ``IndexBinaryFlat`` (exact); False uses the saved approximate index of *kind*.
            rerank: re-order the top ``candidates`` (default ``max(10 k, 100)``) by cosine similarity of the
                stored float16 vectors; needs vectors in the store and for the query.

        Raises:
            IncompatibleGenerationError, CodeLengthError, ItemNotFound, GenerationNotFound, IndexMissing.
        """
        if k <= 0:
            raise StoreError(f"k must be a positive number of results, got {k}.")
        res = self.resolve(version)
        store = self._store(res)
        q = to_query(query, generation=res.name, bits=store.bits,
                     fetch=lambda i: self.get_embedding(i, res.name, with_vector=rerank),
                     embed_image=lambda p: self._embed_one(p, res.name, with_vector=rerank))
        ix = self.index(res.name, kind="flat" if exact else kind)
        if not rerank:
            ids, dist = ix.search(q.code, k)
            keep = ids[0] >= 0
            return SearchResult(res.name, ids[0][keep], dist[0][keep])
        if q.vector is None:
            raise StoreError("Re-ranking needs the query's float vector: search by item id, or pass an Embedding "
                             "with .vector (get_embedding(..., with_vector=True)).")
        if not store.has_vectors:
            raise StoreError(f"The store of {res.name!r} holds no float vectors to re-rank with; backfill with vectors.")
        from embsdk.hamming.rerank import cosine_rerank

        ids, dist = ix.search(q.code, max(candidates or 10 * k, k, 100) if candidates is None else max(candidates, k))
        keep = ids[0] >= 0
        cand, cdist = ids[0][keep], dist[0][keep]
        _, _, vecs = store.get(cand, with_vectors=True)
        top, scores = cosine_rerank(q.vector, cand, vecs, k)  # type: ignore[arg-type]
        hd = dict(zip(cand.tolist(), cdist.tolist()))
        return SearchResult(res.name, top, np.array([hd[int(i)] for i in top], np.int32), scores)

    def search_batch(self, codes: np.ndarray, version: str = DEFAULT_VERSION, *, k: int = 10,
                     exact: bool = True, kind: str = "hnsw") -> list[SearchResult]:
        """Search many packed codes (Q, B) at once (one faiss call)."""
        res = self.resolve(version)
        q = np.ascontiguousarray(codes, dtype=np.uint8)
        ids, dist = self.index(res.name, kind="flat" if exact else kind).search(np.atleast_2d(q), k)
        return [SearchResult(res.name, i[i >= 0], d[i >= 0]) for i, d in zip(ids, dist)]

    def _embed_one(self, path: str, generation: str, *, with_vector: bool) -> Embedding:
        kwargs: dict[str, Any] = {"registry_url": self.registry_url} if self.use_registry else {}
        out = embed([path], version=generation, url=self.embed_url, protocol=self.embed_protocol,
                    return_float=with_vector, **kwargs)
        return out[0]

    def close(self) -> None:
        """Drop cached stores and indexes (idempotent)."""
        with self._lock:
            self._stores.clear()
            self._indexes.clear()
            self._resolved.clear()
            if self._registry is not None:
                self._registry.close()
                self._registry = None

    def __enter__(self) -> Client:  # noqa: PYI034
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --------------------------------------------------------------------------- module-level API
_DEFAULT: dict[tuple[str, str], Client] = {}


def default_client() -> Client:
    """The client for the current ``get_settings()`` (one per registry URL + store folder)."""
    s = get_settings()
    key = (s.registry_url, str(s.store_dir))
    client = _DEFAULT.get(key)
    if client is None:
        client = _DEFAULT[key] = Client(s.registry_url, s.store_dir)
    return client


def get_embedding(item_id: int, version: str = DEFAULT_VERSION, *, with_vector: bool = False) -> Embedding:
    """The stamped code of one item (see :meth:`Client.get_embedding`)."""
    return default_client().get_embedding(item_id, version, with_vector=with_vector)


def get_embeddings(ids: Any, version: str = DEFAULT_VERSION, *, skip_missing: bool = False,
                   with_vectors: bool = False) -> EmbeddingBatch:
    """Stamped codes of many items, vectorized (see :meth:`Client.get_embeddings`)."""
    return default_client().get_embeddings(ids, version, skip_missing=skip_missing, with_vectors=with_vectors)


def search(query: QueryLike, version: str = DEFAULT_VERSION, *, k: int = 10, exact: bool = True,
           rerank: bool = False, kind: str = "hnsw") -> SearchResult:
    """Hamming search (see :meth:`Client.search`)."""
    return default_client().search(query, version, k=k, exact=exact, rerank=rerank, kind=kind)


def search_batch(codes: np.ndarray, version: str = DEFAULT_VERSION, *, k: int = 10, exact: bool = True) -> list[SearchResult]:
    """Search many packed codes at once (see :meth:`Client.search_batch`)."""
    return default_client().search_batch(codes, version, k=k, exact=exact)


def embed(images: Any, version: str = DEFAULT_VERSION, **kwargs: Any) -> list[Embedding]:
    """Embed images with a generation's model (re-exported from :mod:`embsdk.embed`)."""
    try:
        from embsdk.embed import embed as _embed
    except ModuleNotFoundError as exc:
        if exc.name != "embsdk.embed":
            raise
        raise InferenceError("Embedding images needs embsdk.embed (the serving part of embsdk), which this "
                             "install lacks; reinstall embsdk.") from None
    return _embed(images, version=version, **kwargs)
