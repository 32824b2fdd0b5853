"""The manifest's shard list is checked, never trusted (order, seq, names, duplicates), and a long-lived Client
notices shard files written in place after it verified them; ids arrays that are masked or 2-D are refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.errors import InvalidItemId, ShardCorrupt
from embsdk.store import EmbeddingStore, StoreWriter, compact_store, verify_store
from tests.store.conftest import SPEC, codes_for

EMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb")
IDS = np.arange(10, dtype=np.int64)


def _two_commits(store_dir: Path) -> None:
    """ids 0-9 (salt 0), then ids 3-4 upserted again (salt 1): the newer rows must win."""
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(IDS, codes_for(IDS))
        w.commit()
        w.upsert(IDS[3:5], codes_for(IDS[3:5], salt=1))
        w.commit()


def _edit_manifest(store_dir: Path, edit) -> None:
    path = store_dir / "g1" / "MANIFEST.json"
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m))


def _emb(store_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMB_HOME": str(store_dir.parent / "home"), "EMB_STORE": str(store_dir)}
    return subprocess.run(
        [EMB, *args, "--version", "g1", "--no-registry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _swap(m: dict) -> None:
    m["shards"][0], m["shards"][1] = m["shards"][1], m["shards"][0]


def _seq_both(m: dict) -> None:  # the entries' seq swapped too, names left: seq no longer matches the name
    _swap(m)
    m["shards"][0]["seq"], m["shards"][1]["seq"] = m["shards"][1]["seq"], m["shards"][0]["seq"]


def _renamed(m: dict) -> None:  # entries renumbered to fit the swapped order: headers disagree
    _swap(m)
    for i, s in enumerate(m["shards"]):
        s["seq"] = i + 1


def _twice(m: dict) -> None:
    m["shards"].append(dict(m["shards"][0]))
    m["next_seq"] += 5


def _outside(m: dict) -> None:
    m["shards"][0]["name"] = "../../elsewhere/shards/" + m["shards"][0]["name"]


def _next_seq(m: dict) -> None:
    m["next_seq"] = 1


@pytest.mark.parametrize("edit", [_swap, _seq_both, _twice, _outside, _next_seq])
def test_an_inconsistent_shard_list_is_refused_by_reads_verify_and_compact(store_dir, edit):
    _two_commits(store_dir)
    assert EmbeddingStore.open(store_dir, "g1").get([3])[1][0].tolist() == codes_for([3], salt=1)[0].tolist()
    _edit_manifest(store_dir, edit)
    with pytest.raises(ShardCorrupt, match="MANIFEST.json|manifest"):
        EmbeddingStore.open(store_dir, "g1")
    report = verify_store(store_dir, "g1")
    assert not report.ok and "MANIFEST.json" in report.problems[0]
    before = (store_dir / "g1" / "MANIFEST.json").read_bytes()
    with pytest.raises(ShardCorrupt, match="Refusing to compact"):
        compact_store(store_dir, "g1")
    assert (store_dir / "g1" / "MANIFEST.json").read_bytes() == before


def test_swapped_shards_through_emb(store_dir):
    _two_commits(store_dir)
    _edit_manifest(store_dir, _swap)
    r = _emb(store_dir, "get", "3")
    assert r.returncode == 1 and "out of commit order" in r.stderr and r.stdout == ""
    assert "Traceback" not in r.stderr
    r = _emb(store_dir, "store", "verify")
    assert r.returncode == 1 and "out of commit order" in r.stdout + r.stderr
    r = _emb(store_dir, "store", "compact")
    assert r.returncode == 1 and "out of commit order" in r.stderr


def test_an_entry_that_disagrees_with_its_shard_header_is_refused(store_dir):
    _two_commits(store_dir)
    root = store_dir / "g1"
    m = json.loads((root / "MANIFEST.json").read_text())
    # rename the folders so that names, entries and order agree, but the headers still say the old seq
    old, new = m["shards"][0]["name"], m["shards"][1]["name"]
    a = new.replace(new[:8], f"{1:08d}", 1)
    b = old.replace(old[:8], f"{2:08d}", 1)
    shutil.move(root / "shards" / new, root / "shards" / a)
    shutil.move(root / "shards" / old, root / "shards" / b)
    m["shards"] = [
        {**m["shards"][1], "name": a, "seq": 1},
        {**m["shards"][0], "name": b, "seq": 2},
    ]
    (root / "MANIFEST.json").write_text(json.dumps(m))
    with pytest.raises(ShardCorrupt, match="header.json says seq 2"):
        EmbeddingStore.open(store_dir, "g1")
    report = verify_store(store_dir, "g1")
    assert not report.ok and any("MANIFEST.json lists it as seq 1" in p for p in report.problems)
    with pytest.raises(ShardCorrupt, match="Refusing to compact"):
        compact_store(store_dir, "g1")


def test_a_row_count_that_disagrees_with_the_header_is_refused(store_dir):
    _two_commits(store_dir)

    def rows(m: dict) -> None:
        m["shards"][1]["rows"] = 7

    _edit_manifest(store_dir, rows)
    with pytest.raises(ShardCorrupt, match="7 rows"):
        EmbeddingStore.open(store_dir, "g1")
    assert not verify_store(store_dir, "g1").ok


# ------------------------------------------------------------------ files written in place (item 3)
def _data_shard(store_dir: Path) -> Path:
    m = json.loads((store_dir / "g1" / "MANIFEST.json").read_text())
    return store_dir / "g1" / "shards" / m["shards"][0]["name"]


def _overwrite_code(path: Path, row: int, rows: int) -> None:
    """Change one code byte in place (r+b: same inode, same size)."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - (rows - row) * 8)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x5A]))


@pytest.mark.parametrize("ttl", [0, 0.2])
def test_a_long_lived_client_notices_bytes_changed_in_place(store_dir, ttl):
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(IDS, codes_for(IDS))
    client = embsdk.Client(store=store_dir, use_registry=False, resolve_ttl=ttl)
    first = client.get_embedding(3, "g1")
    assert first.code.tolist() == codes_for([3])[0].tolist()
    time.sleep(0.01)  # a later mtime even on coarse clocks
    _overwrite_code(_data_shard(store_dir) / "codes.npy", 3, IDS.size)
    time.sleep(ttl)
    with pytest.raises(ShardCorrupt, match="checksum"):
        client.get_embedding(3, "g1")
    with pytest.raises(ShardCorrupt, match="checksum"):
        client.get_embeddings([3], "g1")
    assert first.code.tolist() == codes_for([3])[0].tolist()  # what was served is a copy, not the map


def test_a_replaced_file_is_noticed_too(store_dir):
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(IDS, codes_for(IDS))
    client = embsdk.Client(store=store_dir, use_registry=False, resolve_ttl=0)
    client.get_embedding(3, "g1")
    path = _data_shard(store_dir) / "codes.npy"
    data = bytearray(path.read_bytes())
    data[-(IDS.size - 3) * 8] ^= 1
    tmp = path.with_suffix(".new")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)  # a new inode
    with pytest.raises(ShardCorrupt):
        client.get_embedding(3, "g1")


# ------------------------------------------------------------------ id arrays (item 4)
@pytest.mark.parametrize(
    "bad",
    [
        np.ma.array([3], mask=[True]),
        np.ma.array([3, 4], mask=[False, True]),
        np.ma.array([3, 4]),
        [[3, 4], [5, 6]],
        np.array([[3, 4], [5, 6]]),
        np.array([[3]]),
    ],
    ids=["all-masked", "part-masked", "masked-none", "nested-list", "2d", "1x1"],
)
def test_masked_and_multidimensional_ids_are_refused(store_dir, bad):
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(IDS, codes_for(IDS))
    client = embsdk.Client(store=store_dir, use_registry=False, resolve_ttl=0)
    with pytest.raises(InvalidItemId, match="masked|1-D"):
        client.get_embeddings(bad, "g1")
    store = EmbeddingStore.open(store_dir, "g1")
    with pytest.raises(InvalidItemId):
        store.contains(bad)
    # a 0-d array is one id, a plain 1-D array is fine
    assert store.get(np.array(3))[0].tolist() == [3]
    assert client.get_embeddings(np.array([3, 4]), "g1").codes.shape == (2, 8)


def test_query_anomalies_are_never_reported_as_shard_damage(store_dir):
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(IDS * 2, codes_for(IDS * 2))
    store = EmbeddingStore.open(store_dir, "g1")
    rng = np.random.default_rng(0)
    queries = [
        np.array([-(2**63), 2**63 - 1, -1, 0, 19, 18, 18], np.int64),
        np.array([5, 3], dtype=">i8"),  # big-endian
        np.array([4, 2, 0], np.int8),
        np.array([4, 2, 0, 6], np.uint64),
        np.arange(40, dtype=np.int64)[::3],  # strided view
        rng.integers(-5, 25, 200),
        [],
    ]
    for q in queries:
        expect = np.isin(np.asarray(q, np.int64).reshape(-1), IDS * 2)
        np.testing.assert_array_equal(store.contains(q), expect)
    for q in (-(2**63), 2**63 - 1, 7, 8, np.int32(8), np.uint64(8)):
        try:
            store.get_one(q)
        except KeyError:
            pass
