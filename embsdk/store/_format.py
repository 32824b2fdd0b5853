"""On-disk format of one store shard: a folder of plain ``.npy`` files plus a checksummed JSON header.

A shard folder ``shards/<seq:08d>-<kind>-<token>/`` holds:

- ``header.json``: format, generation name, embedding spec, kind (``data`` or ``tombstone``), row count,
  id range, and for every array file its size, sha256, exact ``.npy`` header bytes and the crc32 of each block
  of ``block_rows`` rows (about 64 KiB).
- ``ids.npy``: int64 (N,), strictly increasing.
- ``codes.npy``: uint8 (N, ceil(bits/8)), packed bits (``numpy.packbits`` big-endian), data shards only.
- ``vectors.npy``: float16 (N, dim), optional, data shards only.

Plain ``.npy`` keeps the SDK at numpy-only, is memory-mapped and is read directly by Ray
(``ray.data.read_numpy``) or Spark (``binaryFile`` + ``np.load``).

Readers never serve unchecked bytes: at open each file's ``.npy`` header must equal the recorded bytes (a
flipped ``fortran_order``, dtype or shape is refused), and each block is checked against its crc32 the first
time a row in it is read (``embsdk.store._blocks``). Shards of the first format (``embsdk-shard/1``, no block
checksums) still open: the sha256 of every file is checked at open instead; ``emb store compact`` rewrites them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk._fileio import fsync_dir, sha256_file
from embsdk.errors import CodeLengthError, IncompatibleGenerationError, ShardCorrupt, StoreError
from embsdk.spec import EmbeddingSpec
from embsdk.store._blocks import BlockCheck, block_crcs, block_rows_for, link

__all__ = [
    "CODES",
    "IDS",
    "LEGACY_FORMAT",
    "SHARD_FORMAT",
    "VECTORS",
    "ShardArrays",
    "ShardHeader",
    "code_bytes",
    "file_stamp",
    "open_shard",
    "same_spec",
    "verify_shard",
    "write_shard",
]

SHARD_FORMAT = "embsdk-shard/2"
LEGACY_FORMAT = "embsdk-shard/1"  # no block checksums: whole files are checked at open
HEADER = "header.json"
IDS, CODES, VECTORS = "ids.npy", "codes.npy", "vectors.npy"


def code_bytes(spec: EmbeddingSpec | Mapping[str, Any]) -> int:
    """Bytes per packed code for an embedding spec (:attr:`EmbeddingSpec.code_bytes`).

    Raises:
        InvalidEmbeddingSpec (a StoreError): the spec breaks the contract (e.g. no ``bits``).
    """
    return EmbeddingSpec.coerce(spec).code_bytes


def same_spec(a: EmbeddingSpec | Mapping[str, Any], b: EmbeddingSpec | Mapping[str, Any]) -> bool:
    """Whether two specs are the same contract (compared as :class:`EmbeddingSpec`, not as dict spellings).

    Raises:
        InvalidEmbeddingSpec: either breaks the contract.
    """
    return EmbeddingSpec.coerce(a) == EmbeddingSpec.coerce(b)


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
        return {
            "format": self.format,
            "generation": self.generation,
            "spec": self.spec,
            "kind": self.kind,
            "seq": self.seq,
            "rows": self.rows,
            "min_id": self.min_id,
            "max_id": self.max_id,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str) -> ShardHeader:
        try:
            EmbeddingSpec.from_dict(d["spec"])  # a header's spec is checked like any other
            return cls(
                generation=str(d["generation"]),
                spec=dict(d["spec"]),
                kind=str(d["kind"]),
                seq=int(d["seq"]),
                rows=int(d["rows"]),
                min_id=d.get("min_id"),
                max_id=d.get("max_id"),
                files=dict(d["files"]),
                format=str(d["format"]),
            )
        except (KeyError, TypeError, ValueError) as exc:  # InvalidEmbeddingSpec is a ValueError
            raise ShardCorrupt(
                f"Shard {where}: header.json is malformed ({exc}). Run: emb store verify"
            ) from None


@dataclass(frozen=True)
class ShardArrays:
    """A shard opened by memory map: ``ids`` sorted int64, ``codes`` uint8 rows, optional float16 ``vectors``."""

    path: Path
    header: ShardHeader
    ids: np.ndarray
    codes: np.ndarray | None
    vectors: np.ndarray | None
    checks: dict[str, BlockCheck] = field(default_factory=dict, repr=False)
    stats: dict[str, FileStamp | None] = field(default_factory=dict, repr=False)
    """Each array file's :func:`file_stamp` taken just before it was mapped (see :meth:`changed_files`)."""

    def changed_files(self) -> list[str]:
        """Array files replaced, resized or written to since this shard was opened (by inode, size, mtime and
        ctime): bytes verified before may no longer be the bytes on disk."""
        return [name for name, st in self.stats.items() if file_stamp(self.path / name) != st]

    def check(self, name: str) -> BlockCheck:
        """The block verification state of one array file (``ids.npy``, ``codes.npy``, ``vectors.npy``)."""
        return self.checks[name]

    def verify_all(self, *, vectors: bool = True) -> None:
        """Verify every block of every array (of all but ``vectors.npy`` unless *vectors*).

        Raises:
            ShardCorrupt: a block fails its checksum.
        """
        for name, check in self.checks.items():
            if vectors or name != VECTORS:
                check.all()


FileStamp = tuple[int, int, int, int]


def file_stamp(path: Path) -> FileStamp | None:
    """``(st_ino, st_size, st_mtime_ns, st_ctime_ns)`` of *path* (None when it is gone).

    Any write through the file system moves ``st_ctime_ns``, which only root can set back (by changing the
    clock), so a file whose stamp is unchanged has not been written to since (to the clock's resolution;
    writes through a shared memory map update the times when the kernel writes the pages back).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Write one array file; return its size, sha256, exact ``.npy`` header bytes and per-block crc32s."""
    array = np.ascontiguousarray(array)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    size = path.stat().st_size
    with open(path, "rb") as f:
        npy_header = f.read(size - array.nbytes)
    rows = block_rows_for(array.nbytes // max(1, array.shape[0]))
    return {
        "bytes": size,
        "sha256": sha256_file(path),
        "npy_header": npy_header.hex(),
        "block_rows": rows,
        "crc32": block_crcs(array, rows),
    }


def write_shard(
    final_dir: Path,
    *,
    generation: str,
    spec: EmbeddingSpec | Mapping[str, Any],
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
    typed = EmbeddingSpec.coerce(spec)
    spec = typed.to_dict() if isinstance(spec, EmbeddingSpec) else dict(spec)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.ndim != 1 or (ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1]))):
        raise StoreError("Shard ids must be a 1-D strictly increasing int64 array.")
    if kind == "data":
        nb = typed.code_bytes
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[0] != ids.size:
            raise StoreError(
                f"codes must be (N, {nb}) uint8 with N = len(ids) = {ids.size}; got {codes.shape}."
            )
        if codes.shape[1] != nb:
            raise CodeLengthError(codes.shape[1], nb, generation)
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float16)
            dim = typed.dim
            if vectors.ndim != 2 or vectors.shape[0] != ids.size or vectors.shape[1] != dim:
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
    header = ShardHeader(
        generation=generation,
        spec=dict(spec),
        kind=kind,
        seq=seq,
        rows=int(ids.size),
        min_id=int(ids[0]) if ids.size else None,
        max_id=int(ids[-1]) if ids.size else None,
        files=files,
    )
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
        raise ShardCorrupt(
            f"Shard {shard_dir.name}: header.json is not valid JSON. Run: emb store verify"
        ) from None
    return ShardHeader.from_dict(d, where=shard_dir.name), hashlib.sha256(raw).hexdigest()


_DTYPES: dict[str, np.dtype[Any]] = {IDS: np.dtype("<i8"), CODES: np.dtype("u1"), VECTORS: np.dtype("<f2")}


def _shape(name: str, header: ShardHeader) -> tuple[int, ...]:
    if name == IDS:
        return (header.rows,)
    spec = EmbeddingSpec.from_dict(header.spec)  # checked when the header was read
    return (header.rows, spec.code_bytes) if name == CODES else (header.rows, spec.dim)


def _corrupt(shard_dir: Path, what: str) -> ShardCorrupt:
    return ShardCorrupt(f"Shard {shard_dir.name}: {what}. Run: emb store verify")


def _size(shard_dir: Path, name: str, header: ShardHeader) -> int:
    expected = header.files.get(name, {}).get("bytes")
    try:
        size = (shard_dir / name).stat().st_size
    except FileNotFoundError:
        raise _corrupt(shard_dir, f"{name} is missing") from None
    if expected is not None and size != int(expected):
        raise _corrupt(shard_dir, f"{name} is {size} bytes, header says {expected}")
    return size


def _map_checked(shard_dir: Path, name: str, header: ShardHeader) -> BlockCheck:
    """Memory-map one array file of a checksummed shard, refusing any ``.npy`` header the writer did not write.

    The dtype and shape come from ``header.json`` (pinned by the manifest), never from the file, so a flipped
    ``fortran_order`` flag or a rewritten shape cannot change how the bytes are read.
    """
    meta = header.files.get(name, {})
    size = _size(shard_dir, name, header)
    try:
        prefix = bytes.fromhex(meta["npy_header"])
        block_rows, crcs = int(meta["block_rows"]), np.frombuffer(bytes.fromhex(meta["crc32"]), ">u4")
    except (KeyError, TypeError, ValueError):
        raise _corrupt(shard_dir, f"header.json has no valid checksums for {name}") from None
    with open(shard_dir / name, "rb") as f:
        if f.read(len(prefix)) != prefix:
            raise _corrupt(
                shard_dir,
                f"{name}'s .npy header (dtype, shape or fortran_order) differs from what was "
                "written; refusing to read it",
            )
    dtype, shape = _DTYPES[name], _shape(name, header)
    if shape[-1] == -1:
        shape = (header.rows, (size - len(prefix)) // max(1, header.rows * dtype.itemsize))
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if size != len(prefix) + nbytes:
        raise _corrupt(
            shard_dir, f"{name} holds {size - len(prefix)} data bytes, expected {nbytes} for {shape}"
        )
    if nbytes == 0:
        array = np.empty(shape, dtype)
        array.flags.writeable = False
    else:
        array = np.asarray(
            np.memmap(shard_dir / name, dtype=dtype, mode="r", offset=len(prefix), shape=shape)
        )
    check = BlockCheck(f"{shard_dir.name}/{name}", array, block_rows, crcs)
    if crcs.size != check.blocks:
        raise _corrupt(
            shard_dir, f"header.json lists {crcs.size} checksum blocks for {name}, expected {check.blocks}"
        )
    return check


def _load_legacy(shard_dir: Path, name: str, header: ShardHeader) -> BlockCheck:
    """A file of an ``embsdk-shard/1`` shard (no block checksums): its whole sha256 is checked at open."""
    _size(shard_dir, name, header)
    actual = sha256_file(shard_dir / name)
    expected = str(header.files.get(name, {}).get("sha256"))
    if actual != expected:
        raise _corrupt(
            shard_dir, f"{name} checksum mismatch (sha256 {actual[:12]}…, header says {expected[:12]}…)"
        )
    try:
        array = np.asarray(np.load(shard_dir / name, mmap_mode="r", allow_pickle=False))
    except ValueError as exc:
        raise _corrupt(shard_dir, f"{name} is not a readable .npy ({exc})") from None
    want = _shape(name, header)
    if (
        array.dtype != _DTYPES[name]
        or not array.flags.c_contiguous
        or array.shape[0] != header.rows
        or (want[-1] != -1 and array.shape != want)
    ):
        raise _corrupt(
            shard_dir, f"{name} is {array.dtype}{array.shape}, expected {_DTYPES[name]}{want} in C order"
        )
    return BlockCheck.trusted(f"{shard_dir.name}/{name}", array)


def open_shard(
    shard_dir: Path,
    *,
    generation: str,
    spec: EmbeddingSpec | Mapping[str, Any],
    header_sha256: str | None = None,
    listed: tuple[int, str, int] | None = None,
) -> ShardArrays:
    """Open a shard by memory map after checking its header against the expected generation and spec.

    The ``.npy`` headers are compared with the bytes the writer recorded; the array bytes are verified block
    by block as they are read (see :class:`~embsdk.store._blocks.BlockCheck`). Shards of the older
    ``embsdk-shard/1`` format have no block checksums: the sha256 of each whole file is checked here instead.

    Raises:
        IncompatibleGenerationError: the shard was written for another generation.
        ShardCorrupt: header tampered with (hash differs from the store manifest), spec differs, files missing,
            of the wrong size, or with a ``.npy`` header other than the one written; or the header's
            ``(seq, kind, rows)`` differ from *listed* (what the manifest entry says).
    """
    header, digest = read_header(shard_dir)
    if header_sha256 is not None and digest != header_sha256:
        raise _corrupt(shard_dir, "header.json changed since it was committed")
    if listed is not None and (header.seq, header.kind, header.rows) != listed:
        raise _corrupt(
            shard_dir,
            f"header.json says seq {header.seq}, kind {header.kind!r}, {header.rows} rows; MANIFEST.json lists "
            f"it as seq {listed[0]}, kind {listed[1]!r}, {listed[2]} rows",
        )
    if header.format not in (SHARD_FORMAT, LEGACY_FORMAT):
        raise ShardCorrupt(
            f"Shard {shard_dir.name}: unknown format {header.format!r} (this embsdk reads "
            f"{SHARD_FORMAT} and {LEGACY_FORMAT})."
        )
    if header.generation != generation:
        raise IncompatibleGenerationError(header.generation, generation)
    if not same_spec(header.spec, spec):
        raise ShardCorrupt(
            f"Shard {shard_dir.name}: embedding spec {header.spec} differs from the store's {spec} for {generation!r}; "
            "the shard cannot be read as this generation."
        )
    names = [IDS] + (
        [CODES] + ([VECTORS] if VECTORS in header.files else []) if header.kind == "data" else []
    )
    load = _map_checked if header.format == SHARD_FORMAT else _load_legacy
    stats = {name: file_stamp(shard_dir / name) for name in names}  # before mapping: a later write shows
    checks = {name: load(shard_dir, name, header) for name in names}
    link(list(checks.values()))
    get = checks.get
    return ShardArrays(
        path=shard_dir,
        header=header,
        ids=checks[IDS].array,
        codes=get(CODES).array if CODES in checks else None,  # type: ignore[union-attr]
        vectors=get(VECTORS).array if VECTORS in checks else None,  # type: ignore[union-attr]
        checks=checks,
        stats=stats,
    )


def verify_shard(
    shard_dir: Path,
    *,
    generation: str,
    spec: EmbeddingSpec | Mapping[str, Any],
    header_sha256: str | None,
    listed: tuple[int, str, int] | None = None,
) -> list[str]:
    """Full check of one shard (header + sha256 of every file + id order and range). Returns problems, empty
    when sound."""
    try:
        shard = open_shard(
            shard_dir, generation=generation, spec=spec, header_sha256=header_sha256, listed=listed
        )
    except (ShardCorrupt, IncompatibleGenerationError) as exc:
        return [str(exc)]
    problems = []
    for name, meta in shard.header.files.items():
        actual = sha256_file(shard_dir / name)
        if actual != meta.get("sha256"):
            problems.append(
                f"Shard {shard_dir.name}: {name} checksum mismatch (sha256 {actual[:12]}…, header says "
                f"{str(meta.get('sha256'))[:12]}…)"
            )
    ids = shard.ids
    if not problems and ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        problems.append(f"Shard {shard_dir.name}: ids are not strictly increasing")
    h = shard.header
    if not problems and ids.size and (h.min_id, h.max_id) != (int(ids[0]), int(ids[-1])):
        problems.append(
            f"Shard {shard_dir.name}: header.json says ids {h.min_id}..{h.max_id}, ids.npy holds "
            f"{int(ids[0])}..{int(ids[-1])}"
        )
    return problems
