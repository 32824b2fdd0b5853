"""Updates, deletes (tombstones) and compaction, checked against a plain dict model of the same operations."""

from __future__ import annotations

import numpy as np
import pytest

from embsdk.errors import ItemNotFound
from embsdk.store import EmbeddingStore, StoreWriter, compact_store, verify_store
from tests.store.conftest import SPEC, codes_for, vectors_for


def _check_against_model(store_dir, model: dict[int, tuple[bytes, bytes]]) -> EmbeddingStore:
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.live_ids(), sorted(model))
    assert len(store) == len(model)
    if model:
        ids = np.array(sorted(model))
        _, codes, vecs = store.get(ids, with_vectors=True)
        assert [c.tobytes() for c in codes] == [model[i][0] for i in ids]
        assert [v.tobytes() for v in vecs] == [model[i][1] for i in ids]
    return store


def test_random_upserts_and_deletes_then_compaction(store_dir):
    rng = np.random.default_rng(7)
    w = StoreWriter(store_dir, "g1", SPEC)
    model: dict[int, tuple[bytes, bytes]] = {}
    for step in range(12):
        ups = rng.choice(300, size=rng.integers(1, 60), replace=False)
        c, v = codes_for(ups, salt=step), vectors_for(ups, salt=step)
        w.upsert(ups, c, v)
        for i, cc, vv in zip(ups, c, v):
            model[int(i)] = (cc.tobytes(), vv.tobytes())
        dels = rng.choice(300, size=rng.integers(0, 30), replace=False)
        w.delete(dels)
        for i in dels:
            model.pop(int(i), None)
        if step % 3 == 2:
            w.commit()
            _check_against_model(store_dir, model)
    w.commit()
    w.close()  # compaction takes the generation's lock
    before = _check_against_model(store_dir, model)
    assert len(before.shards) > 4 and any(s.header.kind == "tombstone" for s in before.shards)
    result = compact_store(store_dir, "g1")
    assert (
        result.shards_after == 1
        and result.items == len(model)
        and len(result.removed) == result.shards_before
    )
    after = _check_against_model(store_dir, model)
    assert len(after.shards) == 1 and after.manifest.version > before.manifest.version
    assert verify_store(store_dir, "g1").ok
    # the reader opened before compaction still reads its (now unlinked) memory maps
    np.testing.assert_array_equal(before.live_ids(), after.live_ids())


def test_delete_then_reinsert_and_missing_after_delete(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert([1, 2, 3], codes_for([1, 2, 3]))
    w.commit()
    w.delete([2])
    w.commit()
    store = EmbeddingStore.open(store_dir, "g1")
    with pytest.raises(ItemNotFound):
        store.get([2])
    assert store.contains([1, 2, 3]).tolist() == [True, False, True]
    w.upsert([2], codes_for([2], salt=9))  # re-insert after delete: the newer shard wins
    w.delete([3])
    w.upsert([3], codes_for([3], salt=9))  # delete then upsert in one commit: the upsert (later) wins
    w.commit()
    np.testing.assert_array_equal(
        EmbeddingStore.open(store_dir, "g1").get([2, 3])[1], codes_for([2, 3], salt=9)
    )


def test_compaction_of_all_deleted_store_and_orphans(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert([1, 2], codes_for([1, 2]))
    w.commit()
    w.delete([1, 2])
    w.commit()
    w.close()
    orphan = store_dir / "g1" / "shards" / "00000099-data-dead.tmp"
    orphan.mkdir()
    assert verify_store(store_dir, "g1").orphans == (orphan.name,)
    res = compact_store(store_dir, "g1")
    assert res.items == 0 and res.shards_after == 0 and orphan.name in res.removed and not orphan.exists()
    store = EmbeddingStore.open(store_dir, "g1")
    assert len(store) == 0 and store.live_ids().size == 0
    with StoreWriter(store_dir, "g1", SPEC) as w:  # still writable after compacting to nothing
        w.upsert([4], codes_for([4]))
    assert EmbeddingStore.open(store_dir, "g1").live_ids().tolist() == [4]
