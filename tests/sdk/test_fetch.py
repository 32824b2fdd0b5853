"""get_embedding / get_embeddings through ``import embsdk`` with a real registry (SQLite and PostgreSQL)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import embsdk
from embsdk.errors import (
    DeprecatedGenerationWarning,
    GenerationNotFound,
    InvalidItemId,
    ItemNotFound,
    RetiredGeneration,
    ShardCorrupt,
)
from embsdk.store import StoreWriter
from tests.sdk.conftest import BITS


def test_get_embedding_is_stamped_and_exact(populated):
    i = 17
    e = embsdk.get_embedding(int(populated.ids[i]), version="unified-v1")
    assert isinstance(e, embsdk.Embedding)
    assert e.generation == "unified-v1" and e.bits == BITS and e.item_id == populated.ids[i]
    np.testing.assert_array_equal(e.code, populated.codes[i])
    assert e.to_bitarray().tolist() == np.unpackbits(populated.codes[i]).tolist()
    assert e.vector is None
    v = embsdk.get_embedding(int(populated.ids[i]), version="unified-v1", with_vector=True).vector
    np.testing.assert_array_equal(v, populated.vectors[i].astype(np.float16))


def test_alias_resolves_to_the_generation(populated):
    e = embsdk.get_embedding(int(populated.ids[0]), version="production")
    assert e.generation == "unified-v1"


def test_get_embeddings_vectorized_in_order(populated):
    order = np.random.default_rng(5).permutation(len(populated.ids))[:500]
    ask = populated.ids[order]
    batch = embsdk.get_embeddings(ask, version="unified-v1")
    assert len(batch) == 500 and batch.generation == "unified-v1"
    np.testing.assert_array_equal(batch.ids, ask)
    np.testing.assert_array_equal(batch.codes, populated.codes[order])
    assert batch[3].item_id == ask[3] and batch[3].hamming(batch[3]) == 0


def test_unknown_ids_raise_or_are_skipped(populated):
    known = populated.ids[:3]
    unknown = [-1, -2]
    with pytest.raises(ItemNotFound) as err:
        embsdk.get_embeddings([*known, *unknown], version="unified-v1")
    assert set(err.value.ids) == {-1, -2} and "skip_missing=True" in str(err.value)
    batch = embsdk.get_embeddings([unknown[0], *known], version="unified-v1", skip_missing=True)
    np.testing.assert_array_equal(batch.ids, known)
    with pytest.raises(ItemNotFound, match="emb backfill"):
        embsdk.get_embedding(-1, version="unified-v1")


def test_unknown_version(populated):
    with pytest.raises(GenerationNotFound, match="emb registry list"):
        embsdk.get_embedding(int(populated.ids[0]), version="nope-v9")


def test_deprecated_warns_and_retired_raises(populated):
    reg = populated.registry
    reg.promote("unified-v1", to="staging")
    reg.promote("unified-v1", to="production")
    reg.deprecate("unified-v1", reason="v2 is out")
    client = embsdk.Client(store=populated.store_dir, resolve_ttl=0)
    with pytest.warns(DeprecatedGenerationWarning, match="deprecated"):
        e = client.get_embedding(int(populated.ids[0]), "unified-v1")
    assert e.generation == "unified-v1"
    reg.retire("unified-v1", reason="gone", force=True)
    with pytest.raises(RetiredGeneration, match="retired"):
        client.get_embedding(int(populated.ids[0]), "unified-v1")


def test_registry_spec_disagreeing_with_store_is_refused(populated):
    from registry import default_embedding_spec

    populated.registry.register("odd-v1", embedding_spec=default_embedding_spec(128))
    w = StoreWriter(populated.store_dir, "odd-v1", default_embedding_spec(64))
    w.upsert([1], np.zeros((1, 8), np.uint8))
    w.commit()
    with pytest.raises(ShardCorrupt, match="spec"):
        embsdk.get_embedding(1, version="odd-v1")


def test_commit_publishes_shards_as_artifacts(populated):
    from embsdk._fileio import sha256_file

    info = populated.registry.get("unified-v1")
    arts = {a.name: a for a in info.artifacts if a.name.startswith("store/")}
    shard = next(p for p in (populated.store_dir / "unified-v1" / "shards").iterdir())
    for f in ("header.json", "ids.npy", "codes.npy", "vectors.npy"):
        assert arts[f"store/{shard.name}/{f}"].sha256 == sha256_file(shard / f)


def test_client_sees_new_commits_and_deletes(populated):
    client = embsdk.Client(registry_url=populated.registry_url, store=populated.store_dir, resolve_ttl=0)
    assert client.get_embeddings(populated.ids[:2], "unified-v1").ids.size == 2
    w = StoreWriter(populated.store_dir, "unified-v1", populated.registry.get("unified-v1").embedding_spec)
    w.upsert([42], populated.codes[:1], populated.vectors[:1])
    w.delete(populated.ids[:1])
    w.commit()
    np.testing.assert_array_equal(client.get_embedding(42, "unified-v1").code, populated.codes[0])
    with pytest.raises(ItemNotFound):
        client.get_embedding(int(populated.ids[0]), "unified-v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing deprecated here: no warning at all
        client.get_embedding(42, "production")


def test_generation_without_a_store_and_empty_store(populated):
    from embsdk.errors import StoreNotFound

    populated.registry.register(
        "empty-v1", embedding_spec=populated.registry.get("unified-v1").embedding_spec
    )
    with pytest.raises(StoreNotFound, match="emb backfill --version empty-v1"):
        embsdk.get_embedding(1, version="empty-v1")
    StoreWriter(populated.store_dir, "empty-v1", populated.registry.get("empty-v1").embedding_spec)
    res = embsdk.search(np.zeros(BITS // 8, np.uint8), version="empty-v1", k=5)
    assert res.ids.size == 0 and res.distances.size == 0
    standalone = embsdk.Client(store=populated.store_dir, use_registry=False)
    with pytest.raises(GenerationNotFound, match="Without a registry"):
        standalone.get_embedding(1, "nope-v1")


def test_ids_that_are_not_int64_are_refused(populated):
    from embsdk.errors import StoreError

    for bad in ([1.5], ["12"], [2**70], [True]):
        with pytest.raises(StoreError, match="64-bit integers"):
            embsdk.get_embeddings(bad, version="unified-v1")
    for bad in (1.0, "12", True):
        with pytest.raises(StoreError, match="64-bit integer"):
            embsdk.get_embedding(bad, version="unified-v1")
    with pytest.raises(StoreError, match="64-bit integer"):  # checked before the registry is asked
        embsdk.get_embedding(1.0, version="no-such-v9")
    for too_big in (2**63, 2**64 - 5, 2**70):  # never wrapped into another (negative) id
        with pytest.raises(InvalidItemId, match="outside"):
            embsdk.get_embedding(too_big, version="unified-v1")
        with pytest.raises(InvalidItemId, match="outside"):
            embsdk.get_embeddings([too_big], version="unified-v1")
