"""Write → read round trips: order, big int64 ids, vectors, duplicates, missing ids, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embsdk.errors import CodeLengthError, InvalidItemId, ItemNotFound, StoreError, UnsafePath
from embsdk.store import EmbeddingStore, StoreWriter
from tests.store.conftest import SPEC, codes_for, vectors_for


def test_round_trip_in_request_order_with_big_ids(store_dir):
    rng = np.random.default_rng(1)
    ids = rng.choice(np.iinfo(np.int64).max, size=500, replace=False).astype(np.int64)  # pin-id sized
    ids[0], ids[1] = -5, np.iinfo(np.int64).max
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert(ids, codes_for(ids), vectors_for(ids))
    res = w.commit()
    assert res.upserted == 500 and len(res.shards) == 1
    store = EmbeddingStore.open(store_dir, "g1")
    assert len(store) == 500 and store.has_vectors
    ask = np.concatenate([ids[::-7], ids[:3], ids[:3]])  # any order, duplicates allowed
    got_ids, codes, vecs = store.get(ask, with_vectors=True)
    np.testing.assert_array_equal(got_ids, ask)
    np.testing.assert_array_equal(codes, codes_for(ask))
    np.testing.assert_array_equal(vecs, vectors_for(ask))
    assert (
        isinstance(store.shards[0].codes.base, np.memmap) and not store.shards[0].codes.flags.writeable
    )  # mapped, read-only


def test_missing_ids_raise_or_are_skipped(store_dir):
    ids = np.arange(0, 100, 2)
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(ids, codes_for(ids))
    store = EmbeddingStore.open(store_dir, "g1")
    with pytest.raises(ItemNotFound) as err:
        store.get([0, 1, 2, 3])
    assert err.value.ids == (1, 3) and "skip_missing" in str(err.value)
    got, codes, vecs = store.get([3, 2, 1, 0], skip_missing=True)
    np.testing.assert_array_equal(got, [2, 0])
    np.testing.assert_array_equal(codes, codes_for([2, 0]))
    assert vecs is None


def test_same_id_twice_in_one_commit_last_wins(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert([5, 6], codes_for([5, 6], salt=1))
    w.upsert([5], codes_for([5], salt=2))
    assert w.pending == 3
    w.commit()
    _, codes, _ = EmbeddingStore.open(store_dir, "g1").get([5, 6])
    np.testing.assert_array_equal(codes, np.concatenate([codes_for([5], salt=2), codes_for([6], salt=1)]))


def test_layout_is_plain_npy_listed_in_manifest(store_dir):
    ids = np.array([3, 1, 2])
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(ids, codes_for(ids))
    root = store_dir / "g1"
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["generation"] == "g1" and manifest["spec"] == SPEC
    (entry,) = manifest["shards"]
    shard = root / "shards" / entry["name"]
    assert sorted(p.name for p in shard.iterdir()) == ["codes.npy", "header.json", "ids.npy"]
    np.testing.assert_array_equal(np.load(shard / "ids.npy"), [1, 2, 3])  # readable without embsdk
    np.testing.assert_array_equal(np.load(shard / "codes.npy"), codes_for([1, 2, 3]))
    header = json.loads((shard / "header.json").read_text())
    assert header["generation"] == "g1" and header["spec"] == SPEC and header["rows"] == 3
    (files,) = EmbeddingStore.open(store_dir, "g1").shard_files()
    assert (
        files["kind"] == "data"
        and files["codes"] == str(shard / "codes.npy")
        and files["ids"] == str(shard / "ids.npy")
    )


def test_bad_input_is_refused_and_loses_nothing(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert([1], codes_for([1]))
    w.commit()
    with pytest.raises(CodeLengthError):
        w.upsert([2], np.zeros((1, 4), np.uint8))
    with pytest.raises(StoreError, match="64-bit integers"):
        w.upsert(np.array([1.5]), codes_for([1]))
    with pytest.raises(StoreError, match="uint8"):
        w.upsert([2], np.full((1, 8), 300))
    with pytest.raises(StoreError, match="vectors"):
        w.upsert([2], codes_for([2]), np.zeros((1, 3)))
    assert w.pending == 0
    np.testing.assert_array_equal(EmbeddingStore.open(store_dir, "g1").get([1])[1], codes_for([1]))
    w.close()
    with pytest.raises(StoreError, match="spec"):
        StoreWriter(store_dir, "g1", {"dim": 16, "bits": 128})  # a generation's spec never changes
    with pytest.raises(UnsafePath):
        StoreWriter(store_dir, "../evil", SPEC)


def test_present_ids_for_resuming_a_backfill(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    for batch in (np.arange(0, 10), np.arange(5, 20)):  # a re-sent, overlapping batch after a "crash"
        w.upsert(batch, codes_for(batch))
        w.commit()
    np.testing.assert_array_equal(w.present_ids(), np.arange(20))
    assert w.contains([0, 19, 20]).tolist() == [True, True, False]
    assert len(EmbeddingStore.open(store_dir, "g1")) == 20


def test_single_get_fast_path_agrees_with_batch_get(store_dir):
    w = StoreWriter(store_dir, "g1", SPEC)
    w.upsert(np.arange(10), codes_for(np.arange(10)), vectors_for(np.arange(10)))
    w.commit()
    w.upsert([3], codes_for([3], salt=1), vectors_for([3], salt=1))
    w.delete([4])
    w.commit()
    store = EmbeddingStore.open(store_dir, "g1")
    for i in range(10):
        if i == 4:
            with pytest.raises(ItemNotFound):
                store.get_one(i)
            continue
        code, vec = store.get_one(i, with_vector=True)
        _, codes, vecs = store.get([i], with_vectors=True)
        np.testing.assert_array_equal(code, codes[0])
        np.testing.assert_array_equal(vec, vecs[0])
    for absent in (10, -1):
        with pytest.raises(ItemNotFound):
            store.get_one(absent)
    for bad in (2**63, -(2**63) - 1, 2**64 - 5):
        with pytest.raises(InvalidItemId, match="outside"):
            store.get_one(bad)
