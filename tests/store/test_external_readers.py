"""The documented layout is readable by an external engine without embsdk: Ray Data reads the shards directly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embsdk.store import EmbeddingStore, StoreWriter, compact_store
from tests.store.conftest import SPEC, codes_for


@pytest.mark.slow
def test_ray_reads_compacted_shards_directly(store_dir):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")

    ids = np.arange(0, 3000, 3)
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(ids, codes_for(ids))
        w.commit()
        w.delete(ids[:10])
    compact_store(store_dir, "g1")  # one data shard: what external readers should consume
    root = store_dir / "g1"
    live = [s for s in json.loads((root / "MANIFEST.json").read_text())["shards"] if s["kind"] == "data"]
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        got_ids = np.concatenate(
            [
                b["data"]
                for b in ray.data.read_numpy(
                    [str(root / "shards" / s["name"] / "ids.npy") for s in live]
                ).iter_batches(batch_format="numpy")
            ]
        )
        got_codes = np.concatenate(
            [
                b["data"]
                for b in ray.data.read_numpy(
                    [str(root / "shards" / s["name"] / "codes.npy") for s in live]
                ).iter_batches(batch_format="numpy")
            ]
        )
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(got_ids, ids[10:])
    np.testing.assert_array_equal(got_codes, EmbeddingStore.open(store_dir, "g1").get(ids[10:])[1])
