"""A saved approximate index (HNSW / IVF) is checked before faiss reads a byte of it: sha256 of meta.json in
MANIFEST.json, sizes and sha256 of index.faissbin and ids.npy in meta.json, and its ids against the store's live
ids. Any single flipped bit is refused with IndexCorrupt (a ShardCorrupt), never a different answer with exit 0
and never an untyped error; ``emb store verify`` checks saved indexes too."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.errors import IndexCorrupt, IndexMissing, IndexStale, ShardCorrupt
from embsdk.store import StoreWriter, verify_store
from tests.sdk.conftest import emb_standalone

GEN, BITS, N = "ix-v1", 64, 60
IDS = np.arange(N, dtype=np.int64) * 3 - 30  # 67 is not among them


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    codes = np.random.default_rng(4).integers(0, 256, size=(N, BITS // 8), dtype=np.uint8)
    store_dir = tmp_path / "store"
    with StoreWriter(store_dir, GEN, {"bits": BITS}) as w:
        w.upsert(IDS, codes)
    return store_dir


def _client(store_dir: Path) -> embsdk.Client:
    return embsdk.Client(store=store_dir, use_registry=False, resolve_ttl=0)


def _emb(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return emb_standalone(store_dir, GEN, *args)


def _folder(store_dir: Path, kind: str) -> Path:
    return store_dir / GEN / "indexes" / kind


def _search(store_dir: Path, kind: str) -> tuple[list[int], list[int]]:
    res = _client(store_dir).search(int(IDS[3]), GEN, k=5, exact=False, kind=kind)
    return res.ids.tolist(), res.distances.tolist()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_200_single_bit_flips_are_refused_or_harmless(store_dir, kind):
    _client(store_dir).build_index(GEN, kind=kind)
    clean = _search(store_dir, kind)
    folder = _folder(store_dir, kind)
    pristine = {name: (folder / name).read_bytes() for name in ("index.faissbin", "ids.npy", "meta.json")}
    rng = np.random.default_rng(7)
    outcomes = {"refused": 0, "same": 0}
    for i in range(200 if kind == "hnsw" else 60):
        name = list(pristine)[i % 3]
        data = bytearray(pristine[name])
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        (folder / name).write_bytes(bytes(data))
        try:
            got = _search(store_dir, kind)
        except IndexCorrupt as exc:
            assert name in str(exc) and "emb store index" in str(exc), exc
            outcomes["refused"] += 1
        else:
            assert got == clean, (name, pos)
            outcomes["same"] += 1
        (folder / name).write_bytes(pristine[name])
    assert outcomes["refused"] > 0
    assert _search(store_dir, kind) == clean


def test_emb_search_approx_refuses_a_flipped_id(store_dir):
    r = _emb(store_dir, "store", "index", "--kind", "hnsw")
    assert r.returncode == 0, r.stderr
    r = _emb(store_dir, "search", "--id", str(IDS[3]), "-k", "5", "--approx", "--json")
    assert r.returncode == 0, r.stderr
    clean = json.loads(r.stdout)["ids"]
    path = _folder(store_dir, "hnsw") / "ids.npy"
    data = bytearray(path.read_bytes())
    ids = np.load(io.BytesIO(bytes(data)))
    # the attack that returned id 67: one id of the position table changed
    victim = int(np.flatnonzero(ids == clean[0])[0])
    off = len(data) - (N - victim) * 8
    data[off : off + 8] = np.int64(67).tobytes()
    path.write_bytes(bytes(data))
    r = _emb(store_dir, "search", "--id", str(IDS[3]), "-k", "5", "--approx")
    assert r.returncode == 1 and "ids.npy" in r.stderr and "emb store index" in r.stderr, r.stderr
    assert "67" not in r.stdout and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = _emb(store_dir, "store", "verify")
    assert r.returncode == 1 and "search index hnsw: damaged" in r.stdout, r.stdout + r.stderr
    assert "emb store index" in r.stderr
    r = _emb(store_dir, "store", "index", "--kind", "hnsw")  # rebuilding repairs it
    assert r.returncode == 0, r.stderr
    r = _emb(store_dir, "search", "--id", str(IDS[3]), "-k", "5", "--approx", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ids"] == clean
    r = _emb(store_dir, "store", "verify")
    assert r.returncode == 0 and "search index hnsw: ok" in r.stdout, r.stdout


def _rewrite_consistently(store_dir: Path, kind: str, name: str, data: bytes) -> None:
    """Replace one index file and re-record every checksum up the chain (a buggy tool, or a careful attacker):
    only the checks after the checksums can catch it."""
    folder = _folder(store_dir, kind)
    (folder / name).write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    raw = json.dumps(meta).encode()
    (folder / "meta.json").write_bytes(raw)
    mpath = store_dir / GEN / "MANIFEST.json"
    m = json.loads(mpath.read_text())
    m["indexes"][kind]["meta_sha256"] = hashlib.sha256(raw).hexdigest()
    mpath.write_text(json.dumps(m))


def test_ids_that_are_not_the_stores_live_ids_are_refused_even_with_matching_checksums(store_dir):
    _client(store_dir).build_index(GEN, kind="hnsw")
    ids = np.load(_folder(store_dir, "hnsw") / "ids.npy")
    for bad in (np.where(ids == IDS[5], 67, ids), ids[::-1].copy(), ids[:-1].copy()):
        buf = io.BytesIO()
        np.save(buf, bad)
        _rewrite_consistently(store_dir, "hnsw", "ids.npy", buf.getvalue())
        with pytest.raises(IndexCorrupt, match="ids"):
            _search(store_dir, "hnsw")
        assert not verify_store(store_dir, GEN).ok


def test_a_faiss_deserialization_error_is_typed(store_dir):
    _client(store_dir).build_index(GEN, kind="hnsw")
    raw = (_folder(store_dir, "hnsw") / "index.faissbin").read_bytes()
    for garbage in (raw[:40], raw[:4] + b"\xff" * 16 + raw[20:], b"IBHf" + b"\xff" * 64):
        _rewrite_consistently(store_dir, "hnsw", "index.faissbin", garbage)
        with pytest.raises(IndexCorrupt, match="index.faissbin"):
            _search(store_dir, "hnsw")


def test_an_index_not_recorded_in_the_manifest_is_refused(store_dir):
    _client(store_dir).build_index(GEN, kind="hnsw")
    mpath = store_dir / GEN / "MANIFEST.json"
    m = json.loads(mpath.read_text())
    del m["indexes"]
    mpath.write_text(json.dumps(m))
    with pytest.raises(IndexCorrupt, match="not recorded"):
        _search(store_dir, "hnsw")
    report = verify_store(store_dir, GEN)
    assert not report.ok and report.indexes == ({"kind": "hnsw", "status": "damaged"},)


def test_a_stale_index_stays_stale_and_the_record_survives_commits_and_compaction(store_dir):
    from embsdk.store import compact_store

    _client(store_dir).build_index(GEN, kind="hnsw")
    with StoreWriter(store_dir, GEN, {"bits": BITS}) as w:
        w.upsert([10**6], np.zeros((1, 8), np.uint8))
    with pytest.raises(IndexStale):
        _search(store_dir, "hnsw")
    compact_store(store_dir, GEN)
    report = verify_store(store_dir, GEN)
    assert report.ok and report.indexes == ({"kind": "hnsw", "status": "stale"},)
    _client(store_dir).build_index(GEN, kind="hnsw")
    assert _search(store_dir, "hnsw")[0]
    assert verify_store(store_dir, GEN).indexes == ({"kind": "hnsw", "status": "ok"},)
    shutil.rmtree(_folder(store_dir, "hnsw"))  # a deleted index is not damage: search says IndexMissing
    report = verify_store(store_dir, GEN)
    assert report.ok and report.indexes == ({"kind": "hnsw", "status": "missing"},)
    with pytest.raises(IndexMissing):
        _search(store_dir, "hnsw")


def test_index_corrupt_is_a_shard_corrupt():
    assert issubclass(IndexCorrupt, ShardCorrupt)
