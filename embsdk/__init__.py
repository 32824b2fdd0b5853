"""embsdk: fetch, search and compute the unified binarized image embedding.

Light at import: only the standard library and numpy. The registry (SQLAlchemy), faiss and tritonclient
load on first use; torch is never imported by the SDK.

    >>> import embsdk
    >>> e = embsdk.get_embedding(123, version="unified-v1")      # doctest: +SKIP
    >>> embsdk.search(e, version="unified-v1", k=10)              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it (resolved lazily by __getattr__)
_LAZY: dict[str, str] = {
    "Embedding": "embsdk.types",
    "SearchResult": "embsdk.types",
    "InputSpec": "embsdk.preprocess",
    "get_settings": "embsdk.config",
    "errors": "embsdk.errors",
    "Client": "embsdk.client",
    "get_embedding": "embsdk.client",
    "get_embeddings": "embsdk.client",
    "search": "embsdk.client",
    "search_batch": "embsdk.client",
    "EmbeddingBatch": "embsdk.client",
}

__all__ = [  # every _LAZY name, plus embed and __version__
    "Client",
    "Embedding",
    "EmbeddingBatch",
    "InputSpec",
    "SearchResult",
    "__version__",
    "embed",
    "errors",
    "get_embedding",
    "get_embeddings",
    "get_settings",
    "search",
    "search_batch",
]

# ``embed`` is bound eagerly (its module is light: numpy + PIL on first use): a lazily bound name would be
# replaced by the submodule ``embsdk.embed`` the first time anything imports that module.
from embsdk.embed import embed


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embsdk' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name == "errors" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for IDEs and type checkers
    from embsdk import errors
    from embsdk.client import Client, EmbeddingBatch, get_embedding, get_embeddings, search, search_batch
    from embsdk.config import get_settings
    from embsdk.preprocess import InputSpec
    from embsdk.types import Embedding, SearchResult
