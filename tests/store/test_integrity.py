"""Generation and spec checks on open, tampered headers, checksum corruption found by verify, truncation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embsdk.errors import IncompatibleGenerationError, ShardCorrupt, StoreNotFound
from embsdk.store import EmbeddingStore, StoreWriter, verify_store
from tests.store.conftest import SPEC, codes_for


def _one_shard(store_dir, generation="g1", spec=SPEC):
    ids = np.arange(50)
    with StoreWriter(store_dir, generation, spec) as w:
        w.upsert(ids, codes_for(ids))
    root = store_dir / generation
    (entry,) = json.loads((root / "MANIFEST.json").read_text())["shards"]
    return root, root / "shards" / entry["name"]


def test_shard_of_another_generation_is_refused(store_dir):
    _one_shard(store_dir, "g1")
    root2, _ = _one_shard(store_dir, "g2")
    # someone copies g2's shard and manifest into g1's place: names disagree → refused, not misread
    root1 = store_dir / "g1"
    shutil.rmtree(root1 / "shards")
    shutil.copytree(root2 / "shards", root1 / "shards")
    m = json.loads((root2 / "MANIFEST.json").read_text())
    m["generation"] = "g1"
    (root1 / "MANIFEST.json").write_text(json.dumps(m))
    with pytest.raises(IncompatibleGenerationError, match="'g2'.*'g1'"):
        EmbeddingStore.open(store_dir, "g1")
    assert not verify_store(store_dir, "g1").ok


def test_manifest_of_another_generation_and_unknown_generation(store_dir):
    root, _ = _one_shard(store_dir, "g1")
    shutil.copytree(root, store_dir / "g3")
    with pytest.raises(IncompatibleGenerationError):
        EmbeddingStore.open(store_dir, "g3")
    with pytest.raises(StoreNotFound, match="emb backfill"):
        EmbeddingStore.open(store_dir, "nope")


def test_spec_mismatch_with_registry_spec(store_dir):
    _one_shard(store_dir)
    with pytest.raises(ShardCorrupt, match="spec"):
        EmbeddingStore.open(store_dir, "g1", spec={"dim": 16, "bits": 128})
    assert len(EmbeddingStore.open(store_dir, "g1", spec=dict(SPEC))) == 50


def test_tampered_header_is_detected_on_open(store_dir):
    _, shard = _one_shard(store_dir)
    h = json.loads((shard / "header.json").read_text())
    h["spec"]["bits"] = 128
    (shard / "header.json").write_text(json.dumps(h))
    with pytest.raises(ShardCorrupt, match="header.json changed"):
        EmbeddingStore.open(store_dir, "g1")


def test_flipped_byte_is_found_by_verify(store_dir):
    _, shard = _one_shard(store_dir)
    assert verify_store(store_dir, "g1").ok
    path = shard / "codes.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size, one bit of one code changed
    path.write_bytes(bytes(data))
    report = verify_store(store_dir, "g1")
    assert not report.ok and "codes.npy checksum mismatch" in report.problems[0]


def test_truncated_file_is_refused_on_open(store_dir):
    _, shard = _one_shard(store_dir)
    path = shard / "codes.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ShardCorrupt, match="bytes, header says"):
        EmbeddingStore.open(store_dir, "g1")
    (shard / "ids.npy").unlink()
    assert "missing" in verify_store(store_dir, "g1").problems[0]
