"""A real registry (SQLite and PostgreSQL) with a generation whose store holds clustered codes and vectors."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embsdk.codes import pack_codes

BITS, DIM, N = 256, 256, 3000
EMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb")


def emb_standalone(store_dir: Path, generation: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``emb`` on a store read without a registry (``--version GENERATION --no-registry``)."""
    env = {**os.environ, "EMB_HOME": str(store_dir.parent / "home"), "EMB_STORE": str(store_dir)}
    return subprocess.run(
        [EMB, *args, "--version", generation, "--no-registry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 60) -> np.ndarray:
    """Float vectors around *clusters* random centres (so Hamming neighbours are meaningful)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


@dataclass
class Populated:
    registry_url: str
    store_dir: Path
    ids: np.ndarray
    codes: np.ndarray
    vectors: np.ndarray
    registry: object


@pytest.fixture
def populated(registry_url: str, emb_home: Path, monkeypatch: pytest.MonkeyPatch) -> Populated:
    """``unified-v1`` (alias ``production``) and ``other-v1`` registered; unified-v1's store filled with N items."""
    from embsdk.store import StoreWriter
    from registry import Registry, default_embedding_spec

    monkeypatch.setenv("EMB_REGISTRY_URL", registry_url)
    reg = Registry(registry_url)
    spec = default_embedding_spec(BITS, dim=DIM)
    reg.register("unified-v1", embedding_spec=spec)
    reg.register("other-v1", embedding_spec=spec)
    reg.set_alias("production", "unified-v1")
    vectors = clustered(N, DIM)
    ids = np.random.default_rng(1).choice(10**15, size=N, replace=False).astype(np.int64)
    codes = pack_codes(vectors)
    store_dir = emb_home / "store"
    with StoreWriter(store_dir, "unified-v1", reg.get("unified-v1").embedding_spec) as w:
        w.upsert(ids, codes, vectors)
        w.commit(registry=reg)
    with StoreWriter(store_dir, "other-v1", spec) as w2:
        w2.upsert(ids[:10], codes[:10][:, ::-1].copy(), vectors[:10])
    _reset_default_clients()
    yield Populated(registry_url, store_dir, ids, codes, vectors, reg)
    _reset_default_clients()
    reg.close()


def _reset_default_clients() -> None:
    import embsdk.client

    embsdk.client._DEFAULT.clear()
