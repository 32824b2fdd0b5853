"""A writer killed with a real SIGKILL in the middle of writing a shard leaves the previous state readable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embsdk.errors import EmbsdkError
from embsdk.store import EmbeddingStore, StoreWriter, compact_store, verify_store

BATCH = 100_000
SPEC = {"dim": 8, "bits": 256}

_WRITER = f"""
import sys, numpy as np
from embsdk.store import StoreWriter
w = StoreWriter(sys.argv[1], "g1", {SPEC!r})
present = w.present_ids() if (len(sys.argv) > 2) else np.empty(0, np.int64)
for b in range(int(sys.argv[2]) if len(sys.argv) > 2 else 10**6):
    ids = np.arange(b * {BATCH}, (b + 1) * {BATCH}, dtype=np.int64)
    ids = ids[~np.isin(ids, present)]
    if ids.size == 0:
        continue
    codes = ((ids[:, None] * 2654435761 + np.arange(32)) % 251).astype(np.uint8)
    w.upsert(ids, codes, np.repeat((ids % 97)[:, None], 8, 1).astype(np.float16))
    w.commit()
"""


def _expected_codes(ids: np.ndarray) -> np.ndarray:
    return ((ids[:, None] * 2654435761 + np.arange(32)) % 251).astype(np.uint8)


def _wait_for_tmp_shard(shards: Path, proc: subprocess.Popen, min_version: int, store_dir: Path) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.endswith(".tmp") for p in shards.iterdir()) if shards.is_dir() else False:
            with contextlib.suppress(EmbsdkError):  # the store may not exist yet
                if EmbeddingStore.open(store_dir, "g1").manifest.version >= min_version:
                    return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_kill_9_mid_shard_write_then_resume_exactly_once(tmp_path):
    store_dir = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(store_dir)], env=env)
    try:
        caught = _wait_for_tmp_shard(store_dir / "g1" / "shards", proc, 3, store_dir)
        os.kill(proc.pid, signal.SIGKILL)  # the real thing: no cleanup handlers run
    finally:
        proc.wait(timeout=30)
    assert caught, "the writer never got to write a shard"
    assert proc.returncode == -signal.SIGKILL
    # a half-written shard folder is left behind, and nobody sees it
    leftovers = [p.name for p in (store_dir / "g1" / "shards").iterdir() if p.name.endswith(".tmp")]
    store = EmbeddingStore.open(store_dir, "g1")
    n = len(store)
    assert n > 0 and n % BATCH == 0, "only whole committed batches are visible"
    ids = store.live_ids()
    np.testing.assert_array_equal(ids, np.arange(n))
    np.testing.assert_array_equal(store.get(ids)[1], _expected_codes(ids))
    report = verify_store(store_dir, "g1")
    assert report.ok and set(leftovers) <= set(report.orphans)
    # resume: skip what is present, write the rest; every id ends up exactly once
    total_batches = n // BATCH + 2
    subprocess.run([sys.executable, "-c", _WRITER, str(store_dir), str(total_batches)], env=env, check=True)
    compact_store(store_dir, "g1")
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.live_ids(), np.arange(total_batches * BATCH))
    np.testing.assert_array_equal(
        store.get(np.arange(0, total_batches * BATCH, 997))[1],
        _expected_codes(np.arange(0, total_batches * BATCH, 997)),
    )
    assert verify_store(store_dir, "g1").orphans == ()


def test_kill_9_at_random_moments_never_breaks_readers(tmp_path):
    store_dir = tmp_path / "store"
    StoreWriter(store_dir, "g1", SPEC)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = np.random.default_rng(3)
    for delay in rng.uniform(0.3, 1.2, size=3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(store_dir)], env=env)
        time.sleep(float(delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        store = EmbeddingStore.open(store_dir, "g1")
        n = len(store)
        assert n % BATCH == 0
        np.testing.assert_array_equal(store.live_ids(), np.arange(n))
        assert verify_store(store_dir, "g1").ok
