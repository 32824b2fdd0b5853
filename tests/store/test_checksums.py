"""Readers never serve bytes that fail their checksum or a rewritten ``.npy`` header; compaction refuses to
launder a damaged store; verify counts the items of a damaged store; first-format shards still open."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from embsdk.errors import ShardCorrupt
from embsdk.store import EmbeddingStore, StoreWriter, compact_store, verify_store
from embsdk.store._format import LEGACY_FORMAT, SHARD_FORMAT
from tests.store.conftest import SPEC, codes_for, vectors_for

N = 20_000  # codes of 8 bytes: 3 checksum blocks of 8,192 rows


def _write(store_dir: Path, ids: np.ndarray, *, delete: np.ndarray | None = None) -> Path:
    """Commit *ids* (codes and vectors) and optional deletes; return the data shard folder."""
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(ids, codes_for(ids), vectors_for(ids))
        w.commit()
        if delete is not None:
            w.delete(delete)
    m = json.loads((store_dir / "g1" / "MANIFEST.json").read_text())
    return store_dir / "g1" / "shards" / next(s["name"] for s in m["shards"] if s["kind"] == "data")


def _flip_data_byte(path: Path, row: int, row_bytes: int, rows: int) -> None:
    """Flip one byte of row *row* of an .npy file (same size: only a checksum can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) - rows * row_bytes + row * row_bytes] ^= 0x10
    path.write_bytes(bytes(data))


def _flip_fortran_order(path: Path) -> None:
    data = path.read_bytes()
    assert b"'fortran_order': False" in data
    path.write_bytes(data.replace(b"'fortran_order': False", b"'fortran_order': True ", 1))  # same length


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def ids() -> np.ndarray:
    return np.arange(N, dtype=np.int64) * 3 - 7_000


def test_a_flipped_code_byte_is_never_served(store_dir, ids):
    shard = _write(store_dir, ids)
    row = 9_000  # in the second block
    _flip_data_byte(shard / "codes.npy", row, 8, N)
    store = EmbeddingStore.open(store_dir, "g1")  # cheap open: blocks are checked when read
    with pytest.raises(ShardCorrupt, match="fail their checksum"):
        store.get_one(int(ids[row]))
    with pytest.raises(ShardCorrupt, match="fail their checksum"):
        EmbeddingStore.open(store_dir, "g1").get(ids[row - 1 : row + 1])
    with pytest.raises(ShardCorrupt):  # once damage is seen, nothing from that shard is served
        store.get_one(int(ids[0]))
    with pytest.raises(ShardCorrupt):  # a whole-store view (search, compaction) verifies every block
        EmbeddingStore.open(store_dir, "g1").live()
    np.testing.assert_array_equal(
        EmbeddingStore.open(store_dir, "g1").get_one(int(ids[0]))[0], codes_for(ids[:1])[0]
    )


def test_a_flipped_id_byte_never_maps_an_id_to_another_row(store_dir, ids):
    shard = _write(store_dir, ids)
    _flip_data_byte(shard / "ids.npy", 500, 8, N)
    store = EmbeddingStore.open(store_dir, "g1")
    with pytest.raises(ShardCorrupt):
        store.get_one(int(ids[500]))
    with pytest.raises(ShardCorrupt):
        EmbeddingStore.open(store_dir, "g1").get(ids[490:510])


def test_a_flipped_vector_byte_is_refused_with_vectors(store_dir, ids):
    shard = _write(store_dir, ids)
    _flip_data_byte(shard / "vectors.npy", 3, 32, N)
    store = EmbeddingStore.open(store_dir, "g1")
    with pytest.raises(ShardCorrupt):
        store.get_one(int(ids[3]), with_vector=True)


@pytest.mark.parametrize("name", ["codes.npy", "ids.npy", "vectors.npy"])
def test_a_flipped_fortran_order_flag_is_refused_at_open(store_dir, ids, name):
    shard = _write(store_dir, ids)
    _flip_fortran_order(shard / name)
    with pytest.raises(ShardCorrupt, match=r"\.npy header"):
        EmbeddingStore.open(store_dir, "g1")
    report = verify_store(store_dir, "g1")
    assert not report.ok and report.items == N


def test_compact_refuses_a_damaged_store_and_leaves_it_unchanged(store_dir, ids):
    shard = _write(store_dir, ids, delete=ids[:5])
    _flip_data_byte(shard / "codes.npy", 42, 8, N)
    before = _snapshot(store_dir / "g1")
    with pytest.raises(ShardCorrupt, match="Refusing to compact"):
        compact_store(store_dir, "g1")
    assert _snapshot(store_dir / "g1") == before  # nothing rewritten, no fresh checksums
    report = verify_store(store_dir, "g1")
    assert not report.ok and "codes.npy checksum mismatch" in report.problems[0]


def test_verify_counts_the_items_of_a_damaged_store(store_dir):
    ids = np.arange(18)
    shard = _write(store_dir, ids, delete=ids[:3])
    healthy = verify_store(store_dir, "g1")
    assert healthy.ok and healthy.items == 15 == len(EmbeddingStore.open(store_dir, "g1"))
    _flip_data_byte(shard / "codes.npy", 7, 8, 18)
    damaged = verify_store(store_dir, "g1")
    assert not damaged.ok and (damaged.shards, damaged.items) == (2, 15)


def _downgrade_to_first_format(store_dir: Path) -> None:
    """Rewrite every shard header as the first format wrote it (no .npy header bytes, no block checksums)."""
    root = store_dir / "g1"
    m = json.loads((root / "MANIFEST.json").read_text())
    for entry in m["shards"]:
        path = root / "shards" / entry["name"] / "header.json"
        h = json.loads(path.read_text())
        h["format"] = LEGACY_FORMAT
        h["files"] = {n: {"bytes": f["bytes"], "sha256": f["sha256"]} for n, f in h["files"].items()}
        raw = json.dumps(h, indent=1, sort_keys=True).encode()
        path.write_bytes(raw)
        entry["header_sha256"] = hashlib.sha256(raw).hexdigest()
    (root / "MANIFEST.json").write_text(json.dumps(m))


def test_first_format_shards_open_checked_by_sha256_and_compact_upgrades_them(store_dir, ids):
    shard = _write(store_dir, ids[:100], delete=ids[:2])
    _downgrade_to_first_format(store_dir)
    store = EmbeddingStore.open(store_dir, "g1")
    np.testing.assert_array_equal(store.get(ids[2:100])[1], codes_for(ids[2:100]))
    assert verify_store(store_dir, "g1").ok
    result = compact_store(store_dir, "g1")
    assert result.items == 98
    (entry,) = json.loads((store_dir / "g1" / "MANIFEST.json").read_text())["shards"]
    header = json.loads((store_dir / "g1" / "shards" / entry["name"] / "header.json").read_text())
    assert header["format"] == SHARD_FORMAT and header["files"]["codes.npy"]["crc32"]
    # a damaged first-format shard is refused at open (whole-file sha256)
    _write(store_dir, ids[200:300])
    _downgrade_to_first_format(store_dir)
    m = json.loads((store_dir / "g1" / "MANIFEST.json").read_text())
    shard = store_dir / "g1" / "shards" / m["shards"][-1]["name"]
    _flip_data_byte(shard / "codes.npy", 1, 8, 100)
    with pytest.raises(ShardCorrupt, match="checksum mismatch"):
        EmbeddingStore.open(store_dir, "g1")
