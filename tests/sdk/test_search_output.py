"""`emb backfill` records its manifest in the store; `emb search` prints each hit's label and image path from it
(gracefully when it is gone) and leaves the query item out unless --include-self; SearchResult iterates hits;
Embedding equality and np.asarray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import embsdk
from embsdk.types import Embedding, Hit, SearchResult
from tests.backfill.conftest import Published, publish_tiny

EMB = str(Path(sys.executable).with_name("emb"))


def _emb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMB, *args], capture_output=True, text=True, env=os.environ.copy(), check=False)


@pytest.fixture
def labeled(tmp_path: Path) -> tuple[Published, Path]:
    """tiny-v1 backfilled by `emb backfill` from a manifest with relative image paths and two task labels."""
    pub = publish_tiny(tmp_path, n_images=6)
    df = pd.read_csv(pub.manifest)
    df["image"] = [os.path.relpath(p, tmp_path) for p in df["image"]]
    df["task.coarse"] = ["fruit", "fruit", "milk", "milk", "juice", "juice", "broken"]
    df["task.fine"] = ["apple", "pear", "oat", "soy", "", "orange", "x"]
    manifest = tmp_path / "labeled.csv"
    df.to_csv(manifest, index=False)
    out = _emb(
        "backfill", "-v", pub.generation, "-m", str(manifest), "--report", str(tmp_path / "rep"), "--json"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["report_path"] == str(tmp_path / "rep" / "backfill.json")
    assert (tmp_path / "rep" / "backfill.json").is_file()  # --report is a folder
    import embsdk.client

    embsdk.client._DEFAULT.clear()
    return pub, manifest


def test_backfill_records_its_manifest_in_the_store(labeled) -> None:
    import hashlib

    pub, manifest = labeled
    store = embsdk.get_settings().store_dir / pub.generation
    sources = json.loads((store / "MANIFEST.json").read_text())["sources"]
    assert len(sources) == 1
    assert sources[0]["path"] == str(manifest.resolve())
    assert sources[0]["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert sources[0]["rows"] == 7
    _emb("store", "compact", "-v", pub.generation)  # compaction keeps the record
    assert json.loads((store / "MANIFEST.json").read_text())["sources"] == sources


def test_search_prints_labels_and_paths_and_leaves_the_query_out(labeled) -> None:
    pub, _ = labeled
    query = int(pub.good_ids[0])
    out = _emb("search", "--id", str(query), "-v", pub.generation, "-k", "3")
    assert out.returncode == 0, out.stderr
    head, columns, *rows = out.stdout.splitlines()
    assert head == f"top 3 in {pub.generation} ({query} itself left out; --include-self keeps it):"
    assert columns == "rank\tid\thamming\tlabel\timage"
    assert len(rows) == 3 and str(query) not in [r.split("\t")[1] for r in rows]
    labels = dict(
        zip(
            pub.ids.tolist(),
            ["fruit / apple", "fruit / pear", "milk / oat", "milk / soy", "juice", "juice / orange"],
        )
    )
    for r in rows:
        _, item, _, label, image = r.split("\t")
        assert label == labels[int(item)]
        assert image == str(pub.paths[list(pub.ids).index(int(item))])  # absolute, from the relative path

    data = json.loads(_emb("search", "--id", str(query), "-v", pub.generation, "-k", "3", "--json").stdout)
    assert data["excluded_self"] is True and query not in data["ids"] and len(data["hits"]) == 3
    assert data["hits"][0]["labels"]["coarse"] in {"fruit", "milk", "juice"}

    kept = json.loads(
        _emb("search", "--id", str(query), "-v", pub.generation, "-k", "3", "--include-self", "--json").stdout
    )
    assert kept["ids"][0] == query and kept["hits"][0]["hamming"] == 0 and kept["excluded_self"] is False
    assert kept["hits"][0]["label"] == "fruit / apple"


def test_search_without_the_manifest_still_works(labeled) -> None:
    pub, manifest = labeled
    manifest.rename(manifest.with_suffix(".moved"))
    out = _emb("search", "--id", str(int(pub.good_ids[1])), "-v", pub.generation, "-k", "2")
    assert out.returncode == 0, out.stderr
    assert all(r.endswith("\t-\t-") for r in out.stdout.splitlines()[2:])
    assert "is gone" in out.stderr and "Traceback" not in out.stderr


def test_sdk_exclude_self(labeled) -> None:
    pub, _ = labeled
    query = int(pub.good_ids[2])
    client = embsdk.Client()
    with_self = client.search(query, pub.generation, k=3)
    without = client.search(query, pub.generation, k=3, exclude_self=True)
    assert query in with_self.ids.tolist() and query not in without.ids.tolist()
    assert len(without) == 3
    assert len(client.search(query, pub.generation, k=6, exclude_self=True)) == 5  # only 5 others exist
    reranked = client.search(query, pub.generation, k=2, exclude_self=True, rerank=True)
    assert query not in reranked.ids.tolist() and all(h.score is not None for h in reranked)


def test_search_result_iterates_hits() -> None:
    r = SearchResult("g-v1", np.array([7, 3], np.int64), np.array([0, 5], np.int32))
    hits = list(r)
    assert hits == [Hit(7, 0, None), Hit(3, 5, None)] and len(r) == 2
    assert [(h.id, h.distance, h.score) for h in r] == [(7, 0, None), (3, 5, None)]
    assert all(type(h.id) is int and type(h.distance) is int for h in r)
    scored = SearchResult("g-v1", np.array([1]), np.array([2], np.int32), np.array([0.5], np.float32))
    ((item, dist, score),) = scored
    assert (item, dist, score) == (1, 2, 0.5)
    assert list(SearchResult("g", np.array([], np.int64), np.array([], np.int32))) == []


def test_embedding_equality_and_array() -> None:
    code = np.array([1, 2, 3, 255], np.uint8)
    a = Embedding(code, 32, "g-v1", item_id=5)
    b = Embedding(code.copy(), 32, "g-v1", vector=np.ones(32, np.float32))  # id and vector do not count
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Embedding(code, 32, "g-v2")  # another generation
    assert a != Embedding(code, 31, "g-v1")  # other bits
    assert a != Embedding(np.array([1, 2, 3, 254], np.uint8), 32, "g-v1")
    assert a != code.tobytes() and (a == object()) is False
    arr = np.asarray(a)
    assert arr.dtype == np.uint8 and arr.tolist() == [1, 2, 3, 255]
    assert not arr.flags.writeable  # the embedding stays immutable
    assert np.asarray(a, dtype=np.int64).dtype == np.int64
    assert np.array(a).flags.writeable  # np.array copies
    assert np.unpackbits(a).sum() == np.unpackbits(code).sum()
