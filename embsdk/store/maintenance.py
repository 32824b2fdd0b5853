"""Store maintenance: compaction (merge shards, drop tombstones and superseded rows) and full verification."""

from __future__ import annotations

import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import ShardCorrupt
from embsdk.store._format import IDS, verify_shard, write_shard
from embsdk.store._indexes import (
    IDS_FILE,
    INDEX_FILE,
    INDEXES,
    META_FILE,
    check_ids,
    index_corrupt,
    read_index_files,
)
from embsdk.store._manifest import (
    GenerationLock,
    ShardEntry,
    StoreManifest,
    generation_root,
    manifest_problems,
    read_manifest,
    write_manifest,
)
from embsdk.store.reader import EmbeddingStore

logger = logging.getLogger(__name__)

__all__ = ["CompactResult", "VerifyReport", "compact_store", "verify_store"]


@dataclass(frozen=True)
class CompactResult:
    """Shards before and after; rows kept; orphan folders (crashed writes) removed."""

    generation: str
    version: int
    shards_before: int
    shards_after: int
    items: int
    removed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "version": self.version,
            "shards_before": self.shards_before,
            "shards_after": self.shards_after,
            "items": self.items,
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_store`: ``ok`` when every listed shard is intact."""

    generation: str
    version: int
    shards: int
    items: int
    problems: tuple[str, ...] = ()
    orphans: tuple[str, ...] = field(default_factory=tuple)
    indexes: tuple[dict[str, str], ...] = ()
    """Saved search indexes: ``{"kind", "status"}``, status ``ok``, ``stale`` (built before the latest commit:
    refused by search until rebuilt, not damage), ``missing`` (recorded in the manifest, folder deleted: not
    damage either) or ``damaged`` (also listed in ``problems``)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "version": self.version,
            "ok": self.ok,
            "shards": self.shards,
            "items": self.items,
            "problems": list(self.problems),
            "orphans": list(self.orphans),
            "indexes": [dict(x) for x in self.indexes],
        }


def _orphans(root: Path, listed: set[str]) -> list[Path]:
    shards = root / "shards"
    return sorted(p for p in shards.iterdir() if p.name not in listed) if shards.is_dir() else []


def compact_store(store_dir: str | Path, generation: str, *, registry: Any | None = None) -> CompactResult:
    """Rewrite a generation's store as one data shard of its live rows, then delete the old shards.

    Every input shard is verified first (sha256 of every file): a damaged store is refused and left exactly as
    it was, never rewritten with fresh checksums. Takes the generation's lock (refused while a writer holds it).
    Readers holding the old shards open keep reading them (the files stay mapped until closed); new readers
    see the compacted shard once the manifest is replaced. Also removes leftovers of crashed writes and
    upgrades shards of the older format. With *registry*, the new shard's files are registered as artifacts.

    Raises:
        StoreLocked: a writer or another compaction holds the generation.
        ShardCorrupt: some input shard is damaged (``emb store verify`` lists the problems).
    """
    root = generation_root(Path(store_dir).expanduser(), generation)
    with GenerationLock(root, generation):
        m = read_manifest(root, generation, strict=False)  # a bad shard list is refused below, with the rest
        problems = _shard_problems(root, m)
        if problems:
            raise ShardCorrupt(
                f"Refusing to compact the damaged store of {generation!r} ({len(problems)} problem(s), "
                f"first: {problems[0]}); run: emb store verify --version {generation}"
            )
        store = EmbeddingStore.open(store_dir, generation)
        m = store.manifest
        live = store.live()
        seq = m.next_seq
        new: tuple[ShardEntry, ...] = ()
        if live.ids.size:
            name = f"{seq:08d}-data-{secrets.token_hex(4)}"
            _, digest = write_shard(
                root / "shards" / name,
                generation=generation,
                spec=m.spec,
                kind="data",
                seq=seq,
                ids=live.ids,
                codes=live.codes,
                vectors=live.vectors,
            )
            new = (ShardEntry(name, "data", seq, int(live.ids.size), digest),)
            seq += 1
        m2 = m.bumped(new, seq)
        write_manifest(root, m2)
        removed = []
        for p in _orphans(root, {e.name for e in new}):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        for p in root.glob(".MANIFEST.json.*.tmp"):
            p.unlink(missing_ok=True)
    logger.info(
        "store %s: compacted %d shard(s) into %d (%d live rows), manifest v%s; removed %d folder(s)",
        generation,
        len(m.shards),
        len(new),
        int(live.ids.size),
        m2.version,
        len(removed),
    )
    if registry is not None and new:
        from embsdk.store.publish import publish_shards

        publish_shards(registry, root, generation, [e.name for e in new])
    return CompactResult(generation, m2.version, len(m.shards), len(new), int(live.ids.size), tuple(removed))


def _shard_problems(root: Path, m: StoreManifest) -> list[str]:
    problems = [f"MANIFEST.json: {p}" for p in manifest_problems(m)]
    for e in m.shards:
        if not _safe_name(e.name):
            continue  # reported above; never a path outside shards/
        problems += verify_shard(
            root / "shards" / e.name,
            generation=m.generation,
            spec=m.spec,
            header_sha256=e.header_sha256,
            listed=(e.seq, e.kind, e.rows),
        )
    return problems


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def verify_store(store_dir: str | Path, generation: str) -> VerifyReport:
    """Check every live shard of a generation (header hash, generation, spec, sizes, sha256 of every file, the
    manifest's shard list) and every saved search index (checksums, and the live ids of an index that is not
    stale).

    Never raises for damage it finds (it reports it); raises only when there is no store at all. ``items`` is
    the number of live items the manifest's shards hold, counted from their ids even when some are damaged.
    """
    root = generation_root(Path(store_dir).expanduser(), generation)
    m = read_manifest(root, generation, strict=False)  # a bad shard list is a problem to report
    problems = _shard_problems(root, m)
    orphans = tuple(p.name for p in _orphans(root, {e.name for e in m.shards}))
    indexes, index_problems = _index_report(store_dir, root, m, shards_ok=not problems)
    return VerifyReport(
        generation,
        m.version,
        len(m.shards),
        count_live_items(root, m),
        tuple(problems + index_problems),
        orphans,
        tuple(indexes),
    )


def _index_report(
    store_dir: str | Path, root: Path, m: StoreManifest, *, shards_ok: bool
) -> tuple[list[dict[str, str]], list[str]]:
    """Check every saved search index under ``indexes/`` (the trust chain of :mod:`embsdk.store._indexes`,
    without faiss): ``meta.json`` against ``MANIFEST.json``, the files against ``meta.json``, and an index of
    the current state against the store's live ids (when the shards are sound)."""
    folder = root / INDEXES
    kinds = (
        sorted(
            p.name for p in folder.iterdir() if p.is_dir() and ".tmp" not in p.name and ".old" not in p.name
        )
        if folder.is_dir()
        else []
    )
    report: list[dict[str, str]] = []
    problems: list[str] = []
    live: np.ndarray | None = None
    for kind in sorted(set(kinds) | set(m.indexes)):
        where = folder / kind
        try:
            if kind not in kinds:  # deleted: searches fall back to the registry's copy or say IndexMissing
                report.append({"kind": kind, "status": "missing"})
                continue
            if kind not in m.indexes:
                raise index_corrupt(
                    where,
                    "not recorded in the store's MANIFEST.json (saved by an older embsdk, or copied in)",
                    generation=m.generation,
                    kind=kind,
                )
            checked = read_index_files(
                where / INDEX_FILE,
                where / IDS_FILE,
                where / META_FILE,
                generation=m.generation,
                kind=kind,
                meta_sha256=m.indexes[kind],
            )
            if checked.meta.get("state_token") != m.state_token:
                report.append({"kind": kind, "status": "stale"})
                continue
            if shards_ok:
                if live is None:
                    live = EmbeddingStore.open(store_dir, m.generation).live_ids()
                check_ids(checked.ids, live, path=where / IDS_FILE, generation=m.generation, kind=kind)
        except ShardCorrupt as exc:  # IndexCorrupt, or a shard found damaged while reading the live ids
            report.append({"kind": kind, "status": "damaged"})
            problems.append(str(exc))
            continue
        report.append({"kind": kind, "status": "ok"})
    return report, problems


def count_live_items(root: Path, m: StoreManifest) -> int:
    """Live items of a store (newest shard wins, tombstones delete), read from each shard's ``ids.npy`` directly.

    Works on a damaged store: a data shard whose ids cannot be read counts its manifest row count as live.
    """
    unreadable, ids, seq, is_data = 0, [], [], []
    for e in m.shards:
        if not _safe_name(e.name):
            continue
        try:
            a = np.asarray(
                np.load(root / "shards" / e.name / IDS, mmap_mode="r", allow_pickle=False), np.int64
            )
        except (OSError, ValueError):
            unreadable += e.rows if e.kind == "data" else 0
            continue
        a = a.reshape(-1)
        ids.append(a)
        seq.append(np.full(a.size, e.seq))
        is_data.append(np.full(a.size, e.kind == "data"))
    if not ids:
        return unreadable
    all_ids = np.concatenate(ids)
    newest_first = np.lexsort((-np.concatenate(seq), all_ids))  # by id, then newest shard first
    sorted_ids = all_ids[newest_first]
    first = np.ones(sorted_ids.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return unreadable + int(np.concatenate(is_data)[newest_first][first].sum())
