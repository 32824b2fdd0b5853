"""One writer per generation: a second writer process (or a compaction) is refused while the first is open;
readers read meanwhile and never see a half-written state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embsdk.errors import StoreError, StoreLocked
from embsdk.store import EmbeddingStore, StoreWriter, compact_store, verify_store

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

_WRITER = """
import sys, numpy as np
from embsdk.errors import StoreError, StoreLocked
from embsdk.store import StoreWriter
try:
    w = StoreWriter(sys.argv[1], "g1", {"bits": 64})
except StoreLocked as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
start = int(sys.argv[2])
for b in range(15):
    ids = np.arange(start + b * 100, start + (b + 1) * 100)
    w.upsert(ids, (ids[:, None] % 256 + np.arange(8)).astype(np.uint8))
    w.commit()
print("committed", flush=True)
if len(sys.argv) > 3:  # hold the writer open until told to finish
    sys.stdin.readline()
w.close()
"""


def _codes(ids: np.ndarray) -> np.ndarray:
    return (ids[:, None] % 256 + np.arange(8)).astype(np.uint8)


def _writer(store_dir: Path, start: int, *, hold: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-c", _WRITER, str(store_dir), str(start)] + (["hold"] if hold else [])
    return subprocess.Popen(
        args, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_second_writer_process_is_refused_while_the_first_is_open(tmp_path: Path):
    store_dir = tmp_path / "store"
    first = _writer(store_dir, 0, hold=True)
    try:
        assert (
            first.stdout.readline().strip() == "committed"
        )  # it holds the lock from here until told to finish
        second = _writer(store_dir, 10**6)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 3, err
        assert "'g1'" in err and f"process {first.pid}" in err  # names the generation and the holder
        with pytest.raises(StoreLocked) as refused:  # another writer in this process: refused too
            StoreWriter(store_dir, "g1", {"bits": 64})
        assert refused.value.pid == first.pid and refused.value.generation == "g1"
        with pytest.raises(StoreLocked):  # compaction takes the same lock
            compact_store(store_dir, "g1")
    finally:
        first.communicate("go\n", timeout=120)
    assert first.returncode == 0
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.live_ids(), np.arange(1500))  # only the first writer's ids, once
    # once the first writer closed, the next one writes
    later = _writer(store_dir, 10**6)
    later.communicate(timeout=120)
    assert later.returncode == 0
    expected = np.concatenate([np.arange(0, 1500), np.arange(10**6, 10**6 + 1500)])
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.live_ids(), expected)
    np.testing.assert_array_equal(store.get(expected)[1], _codes(expected))
    assert verify_store(store_dir, "g1").ok


def test_writer_lock_is_released_by_close_exit_and_garbage_collection(tmp_path: Path):
    store_dir = tmp_path / "store"
    w = StoreWriter(store_dir, "g1", {"bits": 64})
    w.close()
    w.close()  # idempotent
    with StoreWriter(store_dir, "g1", {"bits": 64}) as w2:
        w2.upsert([1], np.zeros((1, 8), np.uint8))
    assert w2.closed
    StoreWriter(store_dir, "g1", {"bits": 64})  # dropped at once: released when collected
    compact_store(store_dir, "g1")
    with pytest.raises(StoreError, match="closed"):
        w.upsert([2], np.zeros((1, 8), np.uint8))


def test_a_writer_process_and_a_reader(tmp_path: Path):
    store_dir = tmp_path / "store"
    StoreWriter(store_dir, "g1", {"bits": 64}).close()
    proc = _writer(store_dir, 0)
    seen = 0
    while proc.poll() is None:
        n = len(EmbeddingStore.open(store_dir, "g1"))  # never a half-written state
        assert n % 100 == 0 and n >= seen
        seen = n
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.live_ids(), np.arange(1500))
    assert len(store.manifest.shards) == 15 and verify_store(store_dir, "g1").ok
