"""Configuration of the HTTP service (defaults, overridable by ``EMB_SERVER_*`` environment variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from embsdk.config import get_settings
from embsdk.errors import ConfigError

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """What ``create_app`` needs.

    Attributes:
        registry_url: the registry (default ``EMB_REGISTRY_URL`` / SQLite under ``EMB_HOME``).
        store_dir: the embedding store folder (default ``EMB_STORE`` / ``$EMB_HOME/store``).
        max_batch: most ids in one ``POST /v1/items:batch`` (more: 400 naming the limit).
        max_body_bytes: largest request body (more: 413).
        token_cache_ttl: seconds a verified token is trusted without asking the registry again (a revoked
            token is refused at most this long after revocation).
        usage_flush_s: seconds between flushes of the usage counters to the registry (and at shutdown).
        resolve_ttl: seconds a resolved alias and an opened store are reused (``embsdk.Client``).
    """

    registry_url: str = field(default_factory=lambda: get_settings().registry_url, repr=False)
    store_dir: Path = field(default_factory=lambda: get_settings().store_dir)
    max_batch: int = 10_000
    max_body_bytes: int = 1 << 20
    token_cache_ttl: float = 10.0
    usage_flush_s: float = 30.0
    resolve_ttl: float = 5.0

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Defaults overridden by ``EMB_SERVER_MAX_BATCH``, ``EMB_SERVER_MAX_BODY_BYTES``,
        ``EMB_SERVER_TOKEN_CACHE_TTL``, ``EMB_SERVER_USAGE_FLUSH_S`` (read now).

        Raises:
            ConfigError: a value is not a number.
        """
        kwargs: dict[str, float | int] = {}
        for name, kind in (
            ("max_batch", int),
            ("max_body_bytes", int),
            ("token_cache_ttl", float),
            ("usage_flush_s", float),
        ):
            raw = os.environ.get(f"EMB_SERVER_{name.upper()}")
            if raw:
                try:
                    kwargs[name] = kind(raw)
                except ValueError:
                    raise ConfigError(f"EMB_SERVER_{name.upper()}={raw!r} is not a number.") from None
        return cls(**kwargs)  # type: ignore[arg-type]
