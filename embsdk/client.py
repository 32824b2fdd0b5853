"""The SDK entry points: fetch an item's stamped code by id and generation, and search by Hamming distance.

    >>> import embsdk
    >>> e = embsdk.get_embedding(123, version="unified-v1")                    # doctest: +SKIP
    >>> embsdk.search(e, version="unified-v1", k=10).ids                       # doctest: +SKIP

Every ``version`` defaults to :data:`DEFAULT_VERSION`, the ``production`` alias: with ``production`` on
``unified-v2``, ``get_embedding(123)`` reads v2 (the returned Embedding says ``generation='unified-v2'``);
with no ``production`` alias it raises :class:`DefaultAliasNotSet` (an ``AliasNotFound``) naming the
command that sets it.

Module-level functions use a cached default :class:`Client` configured by ``get_settings()``
(``EMB_HOME``, ``EMB_REGISTRY_URL``, ``EMB_STORE``). Imports numpy only; the registry (SQLAlchemy) and
faiss load on first use; torch never.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embsdk.config import get_settings
from embsdk.embed import embed  # re-exported: embsdk.embed is light (numpy; PIL on first use)
from embsdk.errors import GenerationNotFound, StoreError, StoreNotFound
from embsdk.hamming._client_search import (
    DEFAULT_VERSION,
    DefaultAliasNotSet,
    SearchMixin,
    default_alias_error,
)
from embsdk.hamming.query import QueryLike
from embsdk.resolver import check_lifecycle
from embsdk.store._manifest import generation_root, read_manifest
from embsdk.store.batch import EmbeddingBatch
from embsdk.store.reader import EmbeddingStore
from embsdk.types import Embedding, ItemIds, SearchResult

if TYPE_CHECKING:  # for type checkers only: the registry (SQLAlchemy) loads on first use
    from registry import Registry

__all__ = [
    "DEFAULT_VERSION",
    "Client",
    "DefaultAliasNotSet",
    "EmbeddingBatch",
    "Resolved",
    "embed",
    "get_embedding",
    "get_embeddings",
    "search",
    "search_batch",
]


@dataclass(frozen=True)
class Resolved:
    """A version resolved through the registry: generation name, embedding spec (None if unknown), status."""

    name: str
    spec: dict[str, Any] | None
    status: str | None
    requested: str


class Client(SearchMixin):
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

    def __init__(
        self,
        registry_url: str | None = None,
        store: str | Path | None = None,
        *,
        use_registry: bool = True,
        resolve_ttl: float = 5.0,
        embed_url: str | None = None,
        embed_protocol: Literal["http", "grpc"] = "http",
    ) -> None:
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
    def registry(self) -> Registry:
        """The ``registry.Registry`` (opened on first use)."""
        if self._registry is None:
            from registry import Registry

            self._registry = Registry(self.registry_url, create=False)  # a read never creates a registry
        return self._registry

    def resolve(self, version: str) -> Resolved:
        """Resolve a generation name or alias and apply the lifecycle rule (:mod:`embsdk.resolver`).

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
        check_lifecycle(
            res.name, res.status, stacklevel=3
        )  # the one rule (embsdk.resolver), on cached hits too
        return res

    def _resolve_now(self, version: str) -> Resolved:
        if not self.use_registry:
            try:
                m = read_manifest(generation_root(self.store_dir, version), version)
            except StoreNotFound:
                raise GenerationNotFound(
                    version,
                    hint=f"Without a registry, --version must name a generation whose "
                    f"store is in {self.store_dir}.",
                ) from None
            return Resolved(m.generation, m.spec, None, version)
        try:
            info = self.registry.resolve(version)
        except GenerationNotFound as exc:
            raise default_alias_error(version, exc) from None
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
        if (
            hit is not None
            and read_manifest(hit[0].root, res.name).version == hit[0].manifest.version
            and not hit[0].changed_files()  # a shard file written in place: reopen, verify every block again
        ):
            store = hit[0]
        else:
            store = EmbeddingStore.open(self.store_dir, res.name, spec=res.spec)
        with self._lock:
            self._stores[res.name] = (store, now)
        return store

    # ------------------------------------------------------------------ fetch
    def get_embedding(
        self, item_id: int, version: str = DEFAULT_VERSION, *, with_vector: bool = False
    ) -> Embedding:
        """The stamped code of one item.

        Raises:
            StoreError: *item_id* is not an integer (checked before any registry or store access).
            ItemNotFound: the id is not in the store (never backfilled, or deleted).
            GenerationNotFound, RetiredGeneration: see :meth:`resolve`.
        """
        if isinstance(item_id, (bool, np.bool_)) or not isinstance(item_id, (int, np.integer)):
            raise StoreError(f"An item id is a 64-bit integer, not {type(item_id).__name__} ({item_id!r}).")
        res = self.resolve(version)
        store = self._store(res)
        code, vector = store.get_one(int(item_id), with_vector=with_vector)
        return Embedding(code, store.bits, res.name, int(item_id), vector)

    def get_embeddings(
        self,
        ids: ItemIds,
        version: str = DEFAULT_VERSION,
        *,
        skip_missing: bool = False,
        with_vectors: bool = False,
    ) -> EmbeddingBatch:
        """Stamped codes of many items (vectorized), one row per id in the order given.

        Raises:
            ItemNotFound: some ids are absent and ``skip_missing`` is False (the error lists them).
        """
        res = self.resolve(version)
        store = self._store(res)
        got, codes, vectors = store.get(ids, with_vectors=with_vectors, skip_missing=skip_missing)
        return EmbeddingBatch(got, codes, store.bits, res.name, vectors)

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
    """The stamped code of one item (see :meth:`Client.get_embedding`); *version* defaults to ``production``."""
    return default_client().get_embedding(item_id, version, with_vector=with_vector)


def get_embeddings(
    ids: ItemIds, version: str = DEFAULT_VERSION, *, skip_missing: bool = False, with_vectors: bool = False
) -> EmbeddingBatch:
    """Stamped codes of many items, vectorized (see :meth:`Client.get_embeddings`)."""
    return default_client().get_embeddings(ids, version, skip_missing=skip_missing, with_vectors=with_vectors)


def search(
    query: QueryLike,
    version: str = DEFAULT_VERSION,
    *,
    k: int = 10,
    exact: bool = True,
    rerank: bool = False,
    kind: str = "hnsw",
    exclude_self: bool = False,
) -> SearchResult:
    """Hamming search (see :meth:`Client.search`); iterate the result for ``(id, distance, score)`` hits."""
    return default_client().search(
        query, version, k=k, exact=exact, rerank=rerank, kind=kind, exclude_self=exclude_self
    )


def search_batch(
    codes: np.ndarray, version: str = DEFAULT_VERSION, *, k: int = 10, exact: bool = True
) -> list[SearchResult]:
    """Search many packed codes at once (see :meth:`Client.search_batch`)."""
    return default_client().search_batch(codes, version, k=k, exact=exact)
