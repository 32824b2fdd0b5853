"""Saved search indexes of a store, checked before a byte of them reaches faiss.

``<store>/<generation>/indexes/<kind>/`` holds ``index.faissbin`` (``faiss.write_index_binary``), ``ids.npy``
(item id of each index position) and ``meta.json``. The trust chain, from the one file the generation's
single writer replaces atomically:

1. ``MANIFEST.json`` records, per index kind, the sha256 of that kind's ``meta.json`` (written under the
   generation's writer lock by ``emb store index``; a commit or compaction carries it over unchanged).
2. ``meta.json`` records the size and sha256 of ``index.faissbin`` and ``ids.npy``, the generation, the bits
   and the store state the index was built from (``state_token``: the manifest version and its shards'
   header hashes).
3. Loading reads each file once into memory, checks its size and sha256, and only then hands the bytes to
   faiss and numpy (so a file changed after the check is never read); a faiss deserialization error is a
   damaged index too.
4. An index of the store's current state must list exactly the store's live ids, compared with the shards'
   own (block-verified) ids.

Any failure is :class:`~embsdk.errors.IndexCorrupt` (a ``ShardCorrupt``) naming the file and saying that
``emb store index`` rebuilds it. An index folder without an entry in ``MANIFEST.json`` (saved by an older
embsdk, or copied in) is refused the same way. Copies loaded from the registry's artifacts are checked by
the registry's sha256 and then by steps 2-4.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import IndexCorrupt

__all__ = [
    "IDS_FILE",
    "INDEXES",
    "INDEX_FILE",
    "INDEX_FORMAT",
    "META_FILE",
    "CheckedIndexFiles",
    "check_ids",
    "file_record",
    "index_corrupt",
    "read_index_files",
]

INDEX_FORMAT = "embsdk-index/2"
INDEXES = "indexes"
INDEX_FILE, IDS_FILE, META_FILE = "index.faissbin", "ids.npy", "meta.json"


def file_record(data: bytes) -> dict[str, Any]:
    """What ``meta.json`` records of one index file: its size and sha256."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def index_corrupt(path: Path | str, what: str, *, generation: str, kind: str) -> IndexCorrupt:
    return IndexCorrupt(
        f"Search index {path}: {what}; refusing to use it. Rebuild it: emb store index --version "
        f"{generation} --kind {kind}"
    )


class CheckedIndexFiles:
    """The three files of a saved index, read into memory and checked (see the module's trust chain)."""

    def __init__(self, meta: dict[str, Any], meta_sha256: str, index_bytes: bytes, ids: np.ndarray) -> None:
        self.meta, self.meta_sha256, self.index_bytes, self.ids = meta, meta_sha256, index_bytes, ids


def _read(path: Path, *, generation: str, kind: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise index_corrupt(path, "the file is missing", generation=generation, kind=kind) from None
    except OSError as exc:
        raise index_corrupt(path, f"unreadable ({exc})", generation=generation, kind=kind) from None


def read_index_files(
    index_file: Path,
    ids_file: Path,
    meta_file: Path,
    *,
    generation: str,
    kind: str,
    meta_sha256: str | None,
    require_checksums: bool = True,
) -> CheckedIndexFiles:
    """Read and check an index's files (steps 1-3 of the trust chain; the ids against the store are
    :func:`check_ids`).

    Args:
        meta_sha256: the sha256 of ``meta.json`` that ``MANIFEST.json`` records (None: not checked, e.g. a
            registry artifact whose blob the registry checked).
        require_checksums: refuse a ``meta.json`` that records no file checksums (an older embsdk's).

    Raises:
        IndexCorrupt: any file missing, of the wrong size or sha256, ``meta.json`` malformed, ``ids.npy`` not a
            1-D int64 array.
    """
    where = {"generation": generation, "kind": kind}
    raw = _read(meta_file, **where)
    if meta_sha256 is not None and hashlib.sha256(raw).hexdigest() != meta_sha256:
        raise index_corrupt(
            meta_file,
            f"its sha256 {hashlib.sha256(raw).hexdigest()[:12]}… differs from the {meta_sha256[:12]}… that "
            "MANIFEST.json records",
            **where,
        )
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise index_corrupt(meta_file, "not a JSON object", **where)
    files = meta.get("files")
    data: dict[str, bytes] = {}
    for name, path in ((INDEX_FILE, index_file), (IDS_FILE, ids_file)):
        data[name] = _read(path, **where)
        if not isinstance(files, dict):
            if require_checksums:
                raise index_corrupt(
                    meta_file, "records no checksums of its files (saved by an older embsdk)", **where
                )
            continue
        want = files.get(name)
        if not isinstance(want, dict):
            raise index_corrupt(meta_file, f"records no checksum of {name}", **where)
        got = file_record(data[name])
        if got["bytes"] != want.get("bytes"):
            raise index_corrupt(
                path, f"{got['bytes']} bytes, meta.json says {want.get('bytes')} (damaged)", **where
            )
        if got["sha256"] != want.get("sha256"):
            raise index_corrupt(
                path,
                f"checksum mismatch (sha256 {got['sha256'][:12]}…, meta.json says "
                f"{str(want.get('sha256'))[:12]}…)",
                **where,
            )
    try:
        ids = np.load(io.BytesIO(data[IDS_FILE]), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise index_corrupt(ids_file, f"not a readable .npy ({exc})", **where) from None
    if ids.dtype != np.dtype("<i8") or ids.ndim != 1:
        raise index_corrupt(ids_file, f"holds {ids.dtype}{ids.shape}, not int64 (N,)", **where)
    return CheckedIndexFiles(
        meta, hashlib.sha256(raw).hexdigest(), data[INDEX_FILE], np.ascontiguousarray(ids)
    )


def check_ids(ids: np.ndarray, live_ids: np.ndarray, *, path: Path | str, generation: str, kind: str) -> None:
    """Refuse an index whose position → id table is not exactly the store's sorted live ids.

    Raises:
        IndexCorrupt: an id that is not live in the store, a live id missing, or the ids out of order.
    """
    if ids.shape == live_ids.shape and bool(np.array_equal(ids, live_ids)):
        return
    pos = np.searchsorted(live_ids, ids)
    known = (pos < live_ids.size) & (live_ids[np.minimum(pos, max(live_ids.size - 1, 0))] == ids)
    if live_ids.size == 0:
        known = np.zeros(ids.size, dtype=bool)
    if not known.all():
        what = f"lists id {int(ids[~known][0])}, which is not a live id of the store"
    elif ids.size != live_ids.size:
        what = f"lists {ids.size} ids, the store has {live_ids.size} live ids"
    else:
        what = "lists the store's ids out of order"
    raise index_corrupt(path, what, generation=generation, kind=kind)
