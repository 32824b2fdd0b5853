"""Helpers for store tests: a tiny spec and deterministic codes derived from ids (so any row can be checked)."""

from __future__ import annotations

import numpy as np
import pytest

SPEC = {"dim": 16, "bits": 64}


def codes_for(ids: np.ndarray, salt: int = 0, nbytes: int = 8) -> np.ndarray:
    """Deterministic packed codes of *ids* (different *salt* = an update with different bytes)."""
    ids = np.asarray(ids, dtype=np.int64)
    rng_rows = [np.random.default_rng([int(i) & 0xFFFFFFFF, (int(i) >> 32) & 0xFFFFFFFF, salt]) for i in ids]
    return (
        np.stack([r.integers(0, 256, nbytes, dtype=np.uint8) for r in rng_rows])
        if len(ids)
        else np.empty((0, nbytes), np.uint8)
    )


def vectors_for(ids: np.ndarray, salt: int = 0, dim: int = 16) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack(
        [np.random.default_rng([int(i) & 0xFFFFFFFF, salt, 7]).normal(size=dim) for i in ids]
    ).astype(np.float16)


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"
