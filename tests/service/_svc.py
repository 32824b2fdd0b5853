"""Shared pieces of the service tests: constants, the Service handle, the tiny registry and store."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

BITS, N = 128, 400
MAX_BATCH, MAX_BODY = 50, 4096
TOKEN_TTL = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    registry: Any
    registry_url: str
    store_dir: Path
    ids: np.ndarray
    codes: np.ndarray
    read_token: str
    admin_token: str
    app: Any

    def client(self, token: str | None = "read", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            value = {"read": self.read_token, "admin": self.admin_token}.get(token, token)
            headers["Authorization"] = f"Bearer {value}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def build_registry_and_store(registry_url: str, store_dir: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """``unified-v1`` (alias ``production``) with N random 128-bit codes in its store; ``empty-v1`` without a store."""
    from embsdk.store import StoreWriter
    from registry import Registry, default_embedding_spec

    reg = Registry(registry_url)
    spec = default_embedding_spec(BITS, dim=BITS)
    reg.register("unified-v1", embedding_spec=spec)
    reg.register("empty-v1", embedding_spec=spec)
    reg.set_alias("production", "unified-v1")
    rng = np.random.default_rng(7)
    ids = np.sort(rng.choice(10**12, size=N, replace=False).astype(np.int64))
    codes = rng.integers(0, 256, size=(N, BITS // 8), dtype=np.uint8)
    with StoreWriter(store_dir, "unified-v1", reg.get("unified-v1").embedding_spec) as w:
        w.upsert(ids, codes)
        w.commit(registry=reg)
    return reg, ids, codes
