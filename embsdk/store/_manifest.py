"""The store manifest: the one file that says which shards are live, replaced atomically on every commit.

``<store>/<generation>/MANIFEST.json`` lists live shards in commit order (``seq``) with the sha256 of each
shard's header. Readers read only this file to find shards, so a shard that is not listed (a ``.tmp``
folder from a crashed writer, or a shard replaced by compaction) is invisible. One writer (or compaction)
per generation at a time holds an ``fcntl`` lock file (:class:`GenerationLock`); readers take no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from embsdk._fileio import write_text_atomic
from embsdk.errors import (
    IncompatibleGenerationError,
    ShardCorrupt,
    StoreError,
    StoreLocked,
    StoreNotFound,
    UnsafePath,
)
from embsdk.names import NAME_RULE, is_generation_name
from embsdk.spec import EmbeddingSpec

__all__ = [
    "STORE_FORMAT",
    "GenerationLock",
    "ShardEntry",
    "StoreManifest",
    "generation_root",
    "manifest_problems",
    "read_manifest",
    "write_manifest",
]

STORE_FORMAT = "embsdk-store/1"
MANIFEST = "MANIFEST.json"
LOCK = ".writer.lock"


@dataclass(frozen=True)
class ShardEntry:
    """One live shard as listed in the manifest."""

    name: str
    kind: str
    seq: int
    rows: int
    header_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "seq": self.seq,
            "rows": self.rows,
            "header_sha256": self.header_sha256,
        }


@dataclass(frozen=True)
class StoreManifest:
    """The live state of one generation's store. ``version`` grows by one on every commit or compaction."""

    generation: str
    spec: dict[str, Any]
    version: int = 0
    next_seq: int = 1
    shards: tuple[ShardEntry, ...] = field(default_factory=tuple)
    updated_at: str = ""
    format: str = STORE_FORMAT
    sources: tuple[dict[str, Any], ...] = ()
    """Manifests the store was backfilled from (``path``, ``sha256``, ``rows``, ``recorded_at``), newest last;
    ``emb search`` reads item labels and image paths from them. Not part of the live state (no version bump)."""
    indexes: dict[str, str] = field(default_factory=dict)
    """Per saved search index kind, the sha256 of its ``indexes/<kind>/meta.json`` (the root of the index's
    trust chain: :mod:`embsdk.store._indexes`). Not part of the live state (no version bump)."""

    @cached_property
    def state_token(self) -> str:
        """Identifies this exact set of live shards (used to tell whether a saved search index is stale)."""
        return f"{self.version}:" + ",".join(s.header_sha256[:16] for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "generation": self.generation,
            "spec": self.spec,
            "version": self.version,
            "next_seq": self.next_seq,
            "updated_at": self.updated_at,
            "shards": [s.to_dict() for s in self.shards],
            **({"sources": [dict(x) for x in self.sources]} if self.sources else {}),
            **(
                {"indexes": {k: {"meta_sha256": v} for k, v in sorted(self.indexes.items())}}
                if self.indexes
                else {}
            ),
        }

    def with_index(self, kind: str, meta_sha256: str) -> StoreManifest:
        """A copy recording the sha256 of the saved *kind* index's ``meta.json`` (written under the lock)."""
        return replace(self, indexes={**self.indexes, kind: meta_sha256})

    def with_source(self, path: str, sha256: str, rows: int) -> StoreManifest:
        """A copy recording that the store was filled from manifest *path* (replacing an entry for that path)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        entry = {"path": path, "sha256": sha256, "rows": int(rows), "recorded_at": now}
        return replace(self, sources=(*(x for x in self.sources if x.get("path") != path), entry))

    def bumped(self, shards: tuple[ShardEntry, ...], next_seq: int) -> StoreManifest:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return replace(self, version=self.version + 1, shards=shards, next_seq=next_seq, updated_at=now)


def generation_root(store_dir: Path, generation: str) -> Path:
    """``<store_dir>/<generation>``, refusing names that could escape the store."""
    if not is_generation_name(generation):  # the registry's one name rule (embsdk.names)
        raise UnsafePath(generation, f"a generation name is {NAME_RULE}")
    return Path(store_dir) / generation


_SHARD_NAME = re.compile(r"(\d{8,})-(data|tombstone)-([0-9a-f]{1,64})")
"""A shard folder's name: ``<seq, 8+ digits>-<kind>-<hex token>`` (as :class:`StoreWriter` names them)."""


def manifest_problems(m: StoreManifest) -> list[str]:
    """What is wrong with a manifest's shard list itself (before any shard is opened); empty when sound.

    The list's order decides which row wins (a newer ``seq`` hides older rows of the same id), so it must be
    in strictly increasing ``seq``, each entry's ``seq`` and ``kind`` must be the ones its folder name carries
    (the shard's ``header.json`` must say the same: checked when it is opened), no shard may be listed twice,
    a folder name may not leave ``shards/``, and ``next_seq`` must be above every listed ``seq``.
    """
    problems: list[str] = []
    names: set[str] = set()
    headers: set[str] = set()
    last: ShardEntry | None = None
    for e in m.shards:
        match = _SHARD_NAME.fullmatch(e.name)
        if match is None:
            problems.append(f"shard entry {e.name!r} is not a shard folder name (<seq>-<kind>-<token>)")
        elif int(match[1]) != e.seq or match[2] != e.kind:
            problems.append(f"shard entry {e.name!r} says seq {e.seq} and kind {e.kind!r}; its name does not")
        if e.kind not in ("data", "tombstone"):
            problems.append(f"shard entry {e.name!r} has unknown kind {e.kind!r}")
        if e.rows < 0:
            problems.append(f"shard entry {e.name!r} has {e.rows} rows")
        if e.name in names or e.header_sha256 in headers:
            problems.append(f"shard {e.name!r} is listed twice")
        if last is not None and e.seq <= last.seq:
            problems.append(
                f"shards are out of commit order ({e.name!r} with seq {e.seq} is listed after {last.name!r} "
                f"with seq {last.seq}): the order decides which row of an id wins"
            )
        names.add(e.name)
        headers.add(e.header_sha256)
        last = e if last is None or e.seq > last.seq else last
    if last is not None and m.next_seq <= last.seq:
        problems.append(f"next_seq {m.next_seq} is not above the last shard's seq {last.seq}")
    return problems


def read_manifest(root: Path, generation: str, *, strict: bool = True) -> StoreManifest:
    """Read ``MANIFEST.json`` of a generation's store.

    With *strict* (the default) a shard list that breaks the rules of :func:`manifest_problems` (out of
    ``seq`` order, a shard listed twice, a name that is not a shard folder) is refused; ``emb store verify``
    reads with ``strict=False`` to report those problems instead.

    Raises:
        StoreNotFound: no store for this generation under *root*'s parent.
        IncompatibleGenerationError: the manifest belongs to another generation.
        ShardCorrupt: the manifest is unreadable, or (with *strict*) its shard list is inconsistent.
    """
    path = root / MANIFEST
    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise StoreNotFound(generation, str(root)) from None
    except ValueError:
        raise ShardCorrupt(
            f"Store manifest {path} is not valid JSON. Run: emb store verify --version {generation}"
        ) from None
    try:
        shards = tuple(
            ShardEntry(
                name=s["name"],
                kind=s["kind"],
                seq=int(s["seq"]),
                rows=int(s["rows"]),
                header_sha256=s["header_sha256"],
            )
            for s in d["shards"]
        )
        EmbeddingSpec.from_dict(d["spec"])  # InvalidEmbeddingSpec is a ValueError: a malformed manifest
        m = StoreManifest(
            generation=d["generation"],
            spec=dict(d["spec"]),
            version=int(d["version"]),
            next_seq=int(d["next_seq"]),
            shards=shards,
            updated_at=d.get("updated_at", ""),
            format=d["format"],
            sources=tuple(dict(x) for x in d.get("sources", ()) if isinstance(x, dict)),
            indexes={
                str(k): str(v["meta_sha256"])
                for k, v in dict(d.get("indexes", {})).items()
                if isinstance(v, dict) and isinstance(v.get("meta_sha256"), str)
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardCorrupt(f"Store manifest {path} is malformed ({exc!r}).") from None
    if m.format != STORE_FORMAT:
        raise ShardCorrupt(
            f"Store manifest {path}: unknown format {m.format!r} (this embsdk reads {STORE_FORMAT})."
        )
    if m.generation != generation:
        raise IncompatibleGenerationError(m.generation, generation)
    if strict:
        problems = manifest_problems(m)
        if problems:
            raise ShardCorrupt(
                f"Store manifest {path}: {problems[0]}; refusing to read it. "
                f"Run: emb store verify --version {generation}"
            )
    return m


def write_manifest(root: Path, manifest: StoreManifest) -> None:
    """Atomically replace ``MANIFEST.json`` (tmp file, fsync, ``os.replace``, fsync the folder)."""
    write_text_atomic(root / MANIFEST, json.dumps(manifest.to_dict(), indent=1, sort_keys=True))


class GenerationLock:
    """The exclusive lock of one generation's store, held by a :class:`StoreWriter` or a compaction.

    An ``fcntl.flock`` on ``<store>/<generation>/.writer.lock``, taken without waiting: a second writer
    (another process, or another writer object in this one) is refused with :class:`StoreLocked`, naming the
    holder's pid (written into the lock file). The kernel releases it when the holder exits or is killed.
    """

    def __init__(self, root: Path, generation: str) -> None:
        self.generation = generation
        self._fd: int | None = None
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            raise StoreLocked(generation, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> GenerationLock:  # noqa: PYI034
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def __del__(self) -> None:  # a fallback: holders release explicitly
        self.release()


def _holder_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def ensure_store(root: Path, generation: str, spec: EmbeddingSpec | Mapping[str, Any]) -> StoreManifest:
    """Create an empty store for *generation* if none exists; check the spec of an existing one.

    Specs compare as :class:`~embsdk.spec.EmbeddingSpec` (``{"bits": 64}`` is ``{"bits": 64, "dim": 64}``); a
    new store records the dict as given (an EmbeddingSpec as its ``to_dict()``).

    Raises:
        InvalidEmbeddingSpec (a StoreError): *spec* breaks the contract.
        StoreError: the existing store was written with another spec.
    """
    typed = EmbeddingSpec.coerce(spec)
    spec = typed.to_dict() if isinstance(spec, EmbeddingSpec) else dict(spec)
    root.mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    try:
        m = read_manifest(root, generation)
    except StoreNotFound:
        m = StoreManifest(generation=generation, spec=spec).bumped((), 1)
        write_manifest(root, m)
        return m
    if EmbeddingSpec.from_dict(m.spec) != typed:
        raise StoreError(
            f"The store of {generation!r} was written with spec {m.spec}, not {spec}; "
            "a generation's spec never changes. Register a new generation instead."
        )
    return m
