"""Two writer processes committing at once never lose each other's shards; readers read meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from embsdk.store import EmbeddingStore, StoreWriter, verify_store

_WRITER = """
import sys, numpy as np
from embsdk.store import StoreWriter
w = StoreWriter(sys.argv[1], "g1", {"bits": 64})
start = int(sys.argv[2])
for b in range(15):
    ids = np.arange(start + b * 100, start + (b + 1) * 100)
    w.upsert(ids, (ids[:, None] % 256 + np.arange(8)).astype(np.uint8))
    w.commit()
"""


def test_two_writer_processes_and_a_reader(tmp_path: Path):
    store_dir = tmp_path / "store"
    StoreWriter(store_dir, "g1", {"bits": 64})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store_dir), str(s)], env=env) for s in (0, 10**6)]
    seen = 0
    while any(p.poll() is None for p in procs):
        n = len(EmbeddingStore.open(store_dir, "g1"))  # never a half-written state
        assert n % 100 == 0 and n >= seen
        seen = n
    assert [p.returncode for p in procs] == [0, 0]
    store = EmbeddingStore.open(store_dir, "g1")
    expected = np.concatenate([np.arange(0, 1500), np.arange(10**6, 10**6 + 1500)])
    np.testing.assert_array_equal(store.live_ids(), expected)
    np.testing.assert_array_equal(store.get(expected)[1], (expected[:, None] % 256 + np.arange(8)).astype(np.uint8))
    assert len(store.manifest.shards) == 30 and verify_store(store_dir, "g1").ok
