"""The embedding store: per generation, packed codes (and float16 vectors) for every item id.

Layout under ``EMB_STORE`` (default ``$EMB_HOME/store``), readable without embsdk::

    <store>/<generation>/MANIFEST.json          live shards, in commit order (atomically replaced)
    <store>/<generation>/shards/<seq>-data-<token>/header.json, ids.npy, codes.npy[, vectors.npy]
    <store>/<generation>/shards/<seq>-tombstone-<token>/header.json, ids.npy
    <store>/<generation>/indexes/<kind>/index.faissbin, ids.npy, meta.json

To read a store from Spark or Ray, list the shard folders named in ``MANIFEST.json`` (never glob
``shards/``: unlisted folders are crash leftovers or compacted away) and read each ``.npy`` with
``numpy.load`` (Ray: ``ray.data.read_numpy``; Spark: ``binaryFile`` + ``numpy.load`` in a pandas UDF).
A row's id is ``ids.npy[i]`` and its code ``codes.npy[i]`` (``vectors.npy[i]`` when present). When a store
has more than one shard, a newer ``seq`` wins and a tombstone deletes: run ``emb store compact`` first to
get exactly one data shard, then::

    import json, ray
    root = f"{store}/{generation}"
    live = [s for s in json.load(open(f"{root}/MANIFEST.json"))["shards"] if s["kind"] == "data"]
    codes = ray.data.read_numpy([f"{root}/shards/{s['name']}/codes.npy" for s in live])

(:meth:`EmbeddingStore.shard_files` gives the same list from Python.)

``header.json`` records each file's sha256, its exact ``.npy`` header bytes and a crc32 per block of rows;
:class:`EmbeddingStore` checks them lazily and never returns bytes that fail (``ShardCorrupt``). External
engines read the files unchecked: run ``emb store verify`` first when that matters.
"""

from embsdk.store._format import ShardArrays, ShardHeader
from embsdk.store._manifest import ShardEntry, StoreManifest, generation_root
from embsdk.store.maintenance import CompactResult, VerifyReport, compact_store, verify_store
from embsdk.store.reader import EmbeddingStore, LiveRows, Lookup
from embsdk.store.writer import CommitResult, StoreWriter

__all__ = [
    "CommitResult",
    "CompactResult",
    "EmbeddingStore",
    "LiveRows",
    "Lookup",
    "ShardArrays",
    "ShardEntry",
    "ShardHeader",
    "StoreManifest",
    "StoreWriter",
    "VerifyReport",
    "compact_store",
    "generation_root",
    "verify_store",
]
