"""On-disk format of one store shard: a folder of plain ``.npy`` files plus a checksummed JSON header.

A shard folder ``shards/<seq:08d>-<kind>-<token>/`` holds:

- ``header.json``: format, generation name, embedding spec, kind (``data`` or ``tombstone``), row count,
  id range, and the size and sha256 of every array file.
- ``ids.npy``: int64 (N,), strictly increasing.
- ``codes.npy``: uint8 (N, ceil(bits/8)), packed bits (``numpy.packbits`` big-endian), data shards only.
- ``vectors.npy``: float16 (N, dim), optional, data shards only.

Plain ``.npy`` keeps the SDK at numpy-only, is memory-mapped with ``np.load(mmap_mode="r")`` and is read
directly by Ray (``ray.data.read_numpy``) or Spark (``binaryFile`` + ``np.load``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk._fileio import fsync_dir, sha256_file
from embsdk.errors import CodeLengthError, IncompatibleGenerationError, ShardCorrupt, StoreError

__all__ = [
    "SHARD_FORMAT",
    "ShardArrays",
    "ShardHeader",
    "code_bytes",
    "open_shard",
    "verify_shard",
    "write_shard",
]

SHARD_FORMAT = "embsdk-shard/1"
HEADER = "header.json"
IDS, CODES, VECTORS = "ids.npy", "codes.npy", "vectors.npy"


def code_bytes(spec: dict[str, Any]) -> int:
    """Bytes per packed code for an embedding spec (``ceil(bits / 8)``)."""
    try:
        bits = int(spec["bits"])
    except (KeyError, TypeError, ValueError):
        raise StoreError(f"Embedding spec {spec!r} has no integer 'bits'; give at least {{'bits': N}}.") from None
    if bits <= 0:
        raise StoreError(f"Embedding spec bits must be > 0, got {bits}.")
    return (bits + 7) // 8


@dataclass(frozen=True)
class ShardHeader:
    """What ``header.json`` says about a shard (checked on every open)."""

    generation: str
    spec: dict[str, Any]
    kind: str
    seq: int
    rows: int
    min_id: int | None
    max_id: int | None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = SHARD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "generation": self.generation, "spec": self.spec, "kind": self.kind,
                "seq": self.seq, "rows": self.rows, "min_id": self.min_id, "max_id": self.max_id,
                "files": self.files}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str) -> ShardHeader:
        try:
            return cls(generation=str(d["generation"]), spec=dict(d["spec"]), kind=str(d["kind"]),
                       seq=int(d["seq"]), rows=int(d["rows"]), min_id=d.get("min_id"), max_id=d.get("max_id"),
                       files=dict(d["files"]), format=str(d["format"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardCorrupt(f"Shard {where}: header.json is malformed ({exc!r}). Run: emb store verify") from None


@dataclass(frozen=True)
class ShardArrays:
    """A shard opened by memory map: ``ids`` sorted int64, ``codes`` uint8 rows, optional float16 ``vectors``."""

    path: Path
    header: ShardHeader
    ids: np.ndarray
    codes: np.ndarray | None
    vectors: np.ndarray | None


def _write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_shard(
    final_dir: Path,
    *,
    generation: str,
    spec: dict[str, Any],
    kind: str,
    seq: int,
    ids: np.ndarray,
    codes: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
) -> tuple[ShardHeader, str]:
    """Write a shard into ``<final_dir>.tmp``, fsync everything, then atomically rename it to *final_dir*.

    Returns ``(header, sha256 of header.json's bytes)``: the digest the store manifest records.

    ``ids`` must be sorted and unique. A crash before the rename leaves only a ``.tmp`` folder that readers
    never look at (compaction removes it).
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.ndim != 1 or (ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1]))):
        raise StoreError("Shard ids must be a 1-D strictly increasing int64 array.")
    if kind == "data":
        nb = code_bytes(spec)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[0] != ids.size:
            raise StoreError(f"codes must be (N, {nb}) uint8 with N = len(ids) = {ids.size}; got {codes.shape}.")
        if codes.shape[1] != nb:
            raise CodeLengthError(codes.shape[1], nb, generation)
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float16)
            dim = spec.get("dim")
            if vectors.ndim != 2 or vectors.shape[0] != ids.size or (dim is not None and vectors.shape[1] != int(dim)):
                raise StoreError(f"vectors must be (N, {dim}) with N = {ids.size}; got {vectors.shape}.")
    elif kind != "tombstone":
        raise StoreError(f"Unknown shard kind {kind!r} (data or tombstone).")
    tmp = final_dir.with_name(final_dir.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=False)
    files = {IDS: _write_npy(tmp / IDS, ids)}
    if kind == "data":
        files[CODES] = _write_npy(tmp / CODES, codes)  # type: ignore[arg-type]
        if vectors is not None:
            files[VECTORS] = _write_npy(tmp / VECTORS, vectors)
    header = ShardHeader(generation=generation, spec=dict(spec), kind=kind, seq=seq, rows=int(ids.size),
                         min_id=int(ids[0]) if ids.size else None, max_id=int(ids[-1]) if ids.size else None,
                         files=files)
    raw = json.dumps(header.to_dict(), indent=1, sort_keys=True).encode()
    with open(tmp / HEADER, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)
    os.replace(tmp, final_dir)
    fsync_dir(final_dir.parent)
    return header, hashlib.sha256(raw).hexdigest()


def read_header(shard_dir: Path) -> tuple[ShardHeader, str]:
    """Read ``header.json`` → (header, sha256 of its bytes)."""
    try:
        raw = (shard_dir / HEADER).read_bytes()
    except FileNotFoundError:
        raise ShardCorrupt(f"Shard {shard_dir.name}: header.json is missing. Run: emb store verify") from None
    try:
        d = json.loads(raw)
    except ValueError:
        raise ShardCorrupt(f"Shard {shard_dir.name}: header.json is not valid JSON. Run: emb store verify") from None
    return ShardHeader.from_dict(d, where=shard_dir.name), hashlib.sha256(raw).hexdigest()


def _load(shard_dir: Path, name: str, header: ShardHeader) -> np.ndarray:
    path = shard_dir / name
    expected = header.files.get(name, {}).get("bytes")
    try:
        size = path.stat().st_size
        if expected is not None and size != int(expected):
            raise ShardCorrupt(f"Shard {shard_dir.name}: {name} is {size} bytes, header says {expected}. Run: emb store verify")
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))  # plain read-only view of the map
    except FileNotFoundError:
        raise ShardCorrupt(f"Shard {shard_dir.name}: {name} is missing. Run: emb store verify") from None
    except ValueError as exc:
        raise ShardCorrupt(f"Shard {shard_dir.name}: {name} is not a readable .npy ({exc}). Run: emb store verify") from None


def open_shard(
    shard_dir: Path, *, generation: str, spec: dict[str, Any], header_sha256: str | None = None
) -> ShardArrays:
    """Open a shard by memory map after checking its header against the expected generation and spec.

    Raises:
        IncompatibleGenerationError: the shard was written for another generation.
        ShardCorrupt: header tampered with (hash differs from the store manifest), spec differs, files missing
            or of the wrong size or shape.
    """
    header, digest = read_header(shard_dir)
    if header_sha256 is not None and digest != header_sha256:
        raise ShardCorrupt(f"Shard {shard_dir.name}: header.json changed since it was committed. Run: emb store verify")
    if header.format != SHARD_FORMAT:
        raise ShardCorrupt(f"Shard {shard_dir.name}: unknown format {header.format!r} (this embsdk reads {SHARD_FORMAT}).")
    if header.generation != generation:
        raise IncompatibleGenerationError(header.generation, generation)
    if header.spec != spec:
        raise ShardCorrupt(
            f"Shard {shard_dir.name}: embedding spec {header.spec} differs from the store's {spec} for {generation!r}; "
            "the shard cannot be read as this generation."
        )
    ids = _load(shard_dir, IDS, header)
    if ids.dtype != np.int64 or ids.shape != (header.rows,):
        raise ShardCorrupt(f"Shard {shard_dir.name}: ids.npy is {ids.dtype}{ids.shape}, header says int64 ({header.rows},).")
    codes = vectors = None
    if header.kind == "data":
        codes = _load(shard_dir, CODES, header)
        if codes.dtype != np.uint8 or codes.shape != (header.rows, code_bytes(spec)):
            raise ShardCorrupt(f"Shard {shard_dir.name}: codes.npy is {codes.dtype}{codes.shape}, expected uint8 "
                               f"({header.rows}, {code_bytes(spec)}).")
        if VECTORS in header.files:
            vectors = _load(shard_dir, VECTORS, header)
            if vectors.dtype != np.float16 or vectors.shape[0] != header.rows:
                raise ShardCorrupt(f"Shard {shard_dir.name}: vectors.npy is {vectors.dtype}{vectors.shape}.")
    return ShardArrays(path=shard_dir, header=header, ids=ids, codes=codes, vectors=vectors)


def verify_shard(shard_dir: Path, *, generation: str, spec: dict[str, Any], header_sha256: str | None) -> list[str]:
    """Full check of one shard (header + sha256 of every file + id order). Returns problems, empty when sound."""
    try:
        shard = open_shard(shard_dir, generation=generation, spec=spec, header_sha256=header_sha256)
    except (ShardCorrupt, IncompatibleGenerationError) as exc:
        return [str(exc)]
    problems = []
    for name, meta in shard.header.files.items():
        actual = sha256_file(shard_dir / name)
        if actual != meta.get("sha256"):
            problems.append(f"Shard {shard_dir.name}: {name} checksum mismatch (sha256 {actual[:12]}…, header says "
                            f"{str(meta.get('sha256'))[:12]}…)")
    ids = shard.ids
    if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        problems.append(f"Shard {shard_dir.name}: ids are not strictly increasing")
    return problems
