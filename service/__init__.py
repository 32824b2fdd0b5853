"""The embedding service: one HTTP API (FastAPI) in front of the registry and the store (``emb server``).

    from service import ServiceSettings, create_app
    app = create_app(ServiceSettings.from_env())      # uvicorn service.app:app_from_env --factory

It reuses :class:`embsdk.Client` for fetch and search and :class:`registry.Registry` for generations, tokens
and usage; every embsdk error becomes an RFC 9457 ``application/problem+json`` body (:mod:`service.problems`).
FastAPI is imported only here, never by ``import embsdk``.
"""

from __future__ import annotations

from service.app import create_app
from service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
