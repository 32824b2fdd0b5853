"""Hamming search: faiss against the numpy popcount reference, every query form, approximate indexes, re-ranking."""

from __future__ import annotations

import numpy as np
import pytest

import embsdk
from embsdk.codes import hamming
from embsdk.errors import CodeLengthError, IncompatibleGenerationError, IndexMissing, IndexStale, StoreError
from embsdk.hamming import BinaryIndex, hamming_topk
from embsdk.store import StoreWriter


@pytest.mark.parametrize("bits", [64, 256, 512])
def test_flat_index_matches_numpy_popcount(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 256, size=(3000, bits // 8), dtype=np.uint8)
    ids = rng.choice(10**12, size=3000, replace=False)
    queries = np.concatenate([codes[:4], rng.integers(0, 256, size=(4, bits // 8), dtype=np.uint8)])
    ix = BinaryIndex.build(codes, ids, generation="g", bits=bits)
    got_ids, got_d = ix.search(queries, 10)
    ref = hamming(queries, codes)  # (Q, N) int32, the project's reference
    np.testing.assert_array_equal(
        got_d, np.sort(ref, axis=1)[:, :10]
    )  # compare distances (ties may reorder ids)
    pos = {int(i): p for p, i in enumerate(ids)}
    for q in range(len(queries)):
        assert [ref[q, pos[int(i)]] for i in got_ids[q]] == got_d[q].tolist()
    ref_d, _ = hamming_topk(queries, codes, 10, block=500)  # block-wise reference agrees too
    np.testing.assert_array_equal(ref_d, got_d)


def test_search_every_query_form_agrees(populated):
    i = 5
    item = int(populated.ids[i])
    by_id = embsdk.search(item, version="unified-v1", k=10)
    e = embsdk.get_embedding(item, version="unified-v1")
    by_emb = embsdk.search(e, version="unified-v1", k=10)
    by_raw = embsdk.search(populated.codes[i], version="production", k=10)
    by_bytes = embsdk.search(populated.codes[i].tobytes(), version="unified-v1", k=10)
    for r in (by_emb, by_raw, by_bytes):
        np.testing.assert_array_equal(r.distances, by_id.distances)
        assert r.generation == "unified-v1"
    ref = np.sort(hamming(populated.codes[i], populated.codes)[0])[:10]
    np.testing.assert_array_equal(by_id.distances, ref)
    assert by_id.distances[0] == 0 and item in by_id.ids[by_id.distances == 0]
    batch = embsdk.search_batch(populated.codes[:3], version="unified-v1", k=4)
    assert [r.distances.tolist() for r in batch] == np.sort(hamming(populated.codes[:3], populated.codes), 1)[
        :, :4
    ].tolist()


def test_search_bad_queries_get_typed_errors(populated):
    with pytest.raises(CodeLengthError, match="32-byte codes"):
        embsdk.search(np.zeros(16, np.uint8), version="unified-v1")
    other = embsdk.get_embedding(int(populated.ids[0]), version="other-v1")
    with pytest.raises(IncompatibleGenerationError, match="other-v1"):
        embsdk.search(other, version="unified-v1")
    mine = embsdk.get_embedding(int(populated.ids[0]), version="unified-v1")
    with pytest.raises(IncompatibleGenerationError):
        mine.hamming(other)
    with pytest.raises(StoreError, match="packed uint8"):
        embsdk.search(np.zeros(32, np.float32), version="unified-v1")
    with pytest.raises(StoreError, match="k must be"):
        embsdk.search(mine, version="unified-v1", k=0)
    with pytest.raises(StoreError, match="k must be"):  # not faiss's bare AssertionError
        embsdk.search_batch(populated.codes[:2], version="unified-v1", k=0)
    with pytest.raises(embsdk.errors.ItemNotFound):
        embsdk.search(-7, version="unified-v1")


def test_approximate_indexes_saved_loaded_and_checked(populated):
    client = embsdk.Client(registry_url=populated.registry_url, store=populated.store_dir, resolve_ttl=0)
    with pytest.raises(IndexMissing, match="emb store index"):
        client.search(int(populated.ids[0]), "unified-v1", exact=False, kind="hnsw")
    queries = populated.codes[:50]
    exact = np.stack([client.search(q, "unified-v1", k=10).ids for q in queries])
    for kind, want in (("hnsw", 0.9), ("ivf", 0.6)):
        client.build_index("unified-v1", kind=kind, publish=True)
        fresh = embsdk.Client(
            registry_url=populated.registry_url, store=populated.store_dir
        )  # loads from disk
        approx = [fresh.search(q, "unified-v1", k=10, exact=False, kind=kind) for q in queries]
        assert (
            type(fresh.index("unified-v1", kind=kind).index).__name__
            == {"hnsw": "IndexBinaryHNSW", "ivf": "IndexBinaryIVF"}[kind]
        )
        recall = np.mean([len(set(a.ids) & set(e)) / 10 for a, e in zip(approx, exact)])
        assert recall >= want, f"{kind} recall@10 {recall:.2f}"
        names = {a.name for a in populated.registry.get("unified-v1").artifacts}
        assert {f"index/{kind}/index.faissbin", f"index/{kind}/ids.npy", f"index/{kind}/meta.json"} <= names
    # a consumer without the local index folder loads the published artifacts (checked by sha256)
    import shutil

    shutil.rmtree(populated.store_dir / "unified-v1" / "indexes")
    remote = embsdk.Client(registry_url=populated.registry_url, store=populated.store_dir)
    r = remote.search(int(populated.ids[0]), "unified-v1", k=10, exact=False, kind="hnsw")
    assert recall_ok(r.ids, exact[0])
    w = StoreWriter(populated.store_dir, "unified-v1", populated.registry.get("unified-v1").embedding_spec)
    w.upsert([7], populated.codes[:1], populated.vectors[:1])
    w.commit()
    with pytest.raises(IndexStale, match="emb store index"):
        client.search(7, "unified-v1", exact=False, kind="hnsw")
    assert 7 in client.search(7, "unified-v1", k=3).ids  # exact search picks up the commit by itself


def recall_ok(got: np.ndarray, want: np.ndarray) -> bool:
    return len(set(got.tolist()) & set(want.tolist())) >= 8


def test_rerank_orders_candidates_by_cosine(populated):
    i = 11
    client = embsdk.Client(registry_url=populated.registry_url, store=populated.store_dir)
    res = client.search(int(populated.ids[i]), "unified-v1", k=10, rerank=True, candidates=200)
    assert res.scores is not None and np.all(np.diff(res.scores) <= 1e-6)
    cand = client.search(int(populated.ids[i]), "unified-v1", k=200)
    v = populated.vectors.astype(np.float16).astype(np.float32)
    pos = {int(x): p for p, x in enumerate(populated.ids)}
    q = v[i] / np.linalg.norm(v[i])
    cos = np.array([v[pos[int(c)]] @ q / np.linalg.norm(v[pos[int(c)]]) for c in cand.ids])
    np.testing.assert_allclose(res.scores, np.sort(cos)[::-1][:10], rtol=1e-5, atol=1e-6)
    assert res.ids[0] == populated.ids[i]
    hd = dict(zip(cand.ids.tolist(), cand.distances.tolist()))
    assert res.distances.tolist() == [hd[int(x)] for x in res.ids]
    with pytest.raises(StoreError, match="float vector"):
        client.search(populated.codes[i], "unified-v1", rerank=True)
