"""Through ``embsdk`` and the real ``emb`` command, on a standalone store (no registry): ids are int64 and
never wrapped, negative ids are found by search, k is an integer in [1, MAX_K], and a damaged shard is
refused by get, search and compact while verify reports it with the right item count."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.errors import CodeLengthError, InvalidItemId, InvalidTopK, ShardCorrupt, StoreError
from embsdk.hamming import hamming_topk
from embsdk.hamming.query import MAX_K
from embsdk.store import StoreWriter
from tests.sdk.conftest import emb_standalone

GEN, BITS = "neg-v1", 64
IDS = np.array([-(2**63), -5, -1, 1, 2, 2**63 - 1], dtype=np.int64)


@pytest.fixture
def standalone(tmp_path: Path) -> tuple[embsdk.Client, np.ndarray, Path]:
    """A store of GEN holding IDS (extremes and negatives) with distinct random codes."""
    codes = np.random.default_rng(4).integers(0, 256, size=(IDS.size, BITS // 8), dtype=np.uint8)
    store_dir = tmp_path / "store"
    with StoreWriter(store_dir, GEN, {"bits": BITS}) as w:
        w.upsert(IDS, codes)
    return embsdk.Client(store=store_dir, use_registry=False, resolve_ttl=0), codes, store_dir


def _emb(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return emb_standalone(store_dir, GEN, *args)


def test_ids_outside_int64_are_refused_never_wrapped(standalone):
    client, codes, _ = standalone
    np.testing.assert_array_equal(client.get_embedding(-(2**63), GEN).code, codes[0])  # the extremes are fine
    np.testing.assert_array_equal(client.get_embeddings([2**63 - 1], GEN).codes[0], codes[-1])
    for bad in (2**63, 2**64 - 5, np.uint64(2**63)):  # would wrap to -2**63 and -5
        with pytest.raises(InvalidItemId, match="outside"):
            client.get_embedding(bad, GEN)
        with pytest.raises(InvalidItemId, match="outside"):
            client.search(bad, GEN, k=2)
    for bad in (
        [2**63],
        [2**64 - 5],
        [1, 2**64 - 5],
        np.array([2**63, 2**64 - 5], np.uint64),
        [1.5],
        np.array([1.5]),
        [True],
        ["1"],
    ):
        with pytest.raises(InvalidItemId, match="64-bit integers"):
            client.get_embeddings(bad, GEN)


def test_emb_get_and_search_refuse_ids_outside_int64(standalone):
    _, codes, store_dir = standalone
    for args in (("get", str(2**63)), ("get", str(2**64 - 5)), ("search", f"--id={2**63}")):
        r = _emb(store_dir, *args, "--json")
        assert r.returncode == 1, (args, r.stdout)
        assert "outside [-2**63, 2**63 - 1]" in r.stderr and "Traceback" not in r.stderr
        assert codes[0].tobytes().hex() not in r.stdout and codes[1].tobytes().hex() not in r.stdout


def test_search_finds_negative_ids(standalone):
    client, codes, store_dir = standalone
    ref_d, _ = hamming_topk(codes[1], codes, 4)
    res = client.search(-5, GEN, k=4)
    assert res.distances.tolist() == ref_d[0].tolist() and -5 in res.ids.tolist()
    true_d = {int(i): int(np.unpackbits(codes[1] ^ c).sum()) for i, c in zip(IDS, codes)}
    assert [true_d[i] for i in res.ids.tolist()] == res.distances.tolist()
    everything = client.search(-5, GEN, k=10)  # more than the store holds: all of it, empty slots dropped
    assert sorted(everything.ids.tolist()) == sorted(IDS.tolist())
    for res in client.search_batch(codes, GEN, k=len(IDS)):
        assert sorted(res.ids.tolist()) == sorted(IDS.tolist())
    r = _emb(store_dir, "search", "--id=-5", "-k", "4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ids"] == client.search(-5, GEN, k=4, exclude_self=True).ids.tolist()
    assert -5 not in json.loads(r.stdout)["ids"]  # emb search leaves the query item out by default


def test_k_is_an_integer_in_range(standalone):
    client, codes, store_dir = standalone
    for bad in (0, -1, 1.5, 10**12, MAX_K + 1, True, "3"):
        with pytest.raises(InvalidTopK, match=f"from 1 to {MAX_K:,}"):
            client.search(1, GEN, k=bad)
        with pytest.raises(InvalidTopK):
            client.search_batch(codes[:2], GEN, k=bad)
    assert client.search(1, GEN, k=MAX_K).ids.size == IDS.size
    for k in ("1000000000000", "0"):
        r = _emb(store_dir, "search", "--id", "1", "-k", k)
        assert r.returncode == 1 and "k must be an integer from 1 to" in r.stderr, r.stderr
        assert "MemoryError" not in r.stderr and "Traceback" not in r.stderr


def test_an_unknown_index_kind_is_refused_never_taken_for_a_folder(standalone):
    client, _, store_dir = standalone
    for kind in ("../hnsw", "HNSW", "hnsw/../../x", ""):
        with pytest.raises(StoreError, match="Unknown index kind"):
            client.search(1, GEN, k=2, exact=False, kind=kind)
    r = _emb(store_dir, "search", "--id", "1", "--approx", "--kind", "../hnsw")
    assert r.returncode == 1 and "Unknown index kind" in r.stderr and "emb store index" not in r.stderr, (
        r.stderr
    )


def _flip_code_byte(store_dir: Path, row: int) -> None:
    m = json.loads((store_dir / GEN / "MANIFEST.json").read_text())
    path = store_dir / GEN / "shards" / m["shards"][0]["name"] / "codes.npy"
    data = bytearray(path.read_bytes())
    data[len(data) - (IDS.size - row) * (BITS // 8)] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_shard_is_refused_by_get_search_and_compact(standalone):
    client, _, store_dir = standalone
    _flip_code_byte(store_dir, 3)
    with pytest.raises(ShardCorrupt, match="checksum"):
        client.get_embedding(int(IDS[3]), GEN)
    with pytest.raises(ShardCorrupt, match="checksum"):
        embsdk.Client(store=store_dir, use_registry=False).search(np.zeros(BITS // 8, np.uint8), GEN, k=3)
    r = _emb(store_dir, "get", str(IDS[3]))
    assert r.returncode == 1 and "fail their checksum" in r.stderr and r.stdout == ""
    r = _emb(store_dir, "search", "--id", str(IDS[0]), "-k", "3")
    assert r.returncode == 1 and "checksum" in r.stderr
    manifest = (store_dir / GEN / "MANIFEST.json").read_bytes()
    r = _emb(store_dir, "store", "compact")
    assert r.returncode == 1 and "Refusing to compact" in r.stderr
    assert (store_dir / GEN / "MANIFEST.json").read_bytes() == manifest
    r = _emb(store_dir, "store", "verify")
    assert r.returncode == 1 and f"DAMAGED (1 shards, {IDS.size} items)" in r.stdout


def test_embedding_hamming_takes_a_packed_code(standalone):
    client, codes, _ = standalone
    e = client.get_embedding(1, GEN)
    expected = int(np.unpackbits(codes[3] ^ codes[0]).sum())
    assert e.hamming(codes[0]) == expected == e.hamming(codes[0].tobytes()) == e.hamming(codes[0][None])
    assert e.hamming(client.get_embedding(-(2**63), GEN)) == expected
    with pytest.raises(CodeLengthError):
        e.hamming(codes[0][:4])
    with pytest.raises(StoreError, match="packed uint8"):
        e.hamming(codes[0].astype(np.int64))
