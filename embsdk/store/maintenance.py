"""Store maintenance: compaction (merge shards, drop tombstones and superseded rows) and full verification."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embsdk.errors import EmbsdkError
from embsdk.store._format import verify_shard, write_shard
from embsdk.store._manifest import ShardEntry, generation_root, read_manifest, write_manifest, writer_lock
from embsdk.store.reader import EmbeddingStore

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
        return {"generation": self.generation, "version": self.version, "shards_before": self.shards_before,
                "shards_after": self.shards_after, "items": self.items, "removed": list(self.removed)}


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_store`: ``ok`` when every listed shard is intact."""

    generation: str
    version: int
    shards: int
    items: int
    problems: tuple[str, ...] = ()
    orphans: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "version": self.version, "ok": self.ok, "shards": self.shards,
                "items": self.items, "problems": list(self.problems), "orphans": list(self.orphans)}


def _orphans(root: Path, listed: set[str]) -> list[Path]:
    shards = root / "shards"
    return sorted(p for p in shards.iterdir() if p.name not in listed) if shards.is_dir() else []


def compact_store(store_dir: str | Path, generation: str, *, registry: Any | None = None) -> CompactResult:
    """Rewrite a generation's store as one data shard of its live rows, then delete the old shards.

    Readers holding the old shards open keep reading them (the files stay mapped until closed); new readers
    see the compacted shard once the manifest is replaced. Also removes leftovers of crashed writes.
    With *registry*, the new shard's files are registered as artifacts of the generation.
    """
    root = generation_root(Path(store_dir).expanduser(), generation)
    with writer_lock(root):
        store = EmbeddingStore.open(store_dir, generation)
        m = store.manifest
        live = store.live()
        seq = m.next_seq
        new: tuple[ShardEntry, ...] = ()
        if live.ids.size:
            name = f"{seq:08d}-data-{secrets.token_hex(4)}"
            _, digest = write_shard(root / "shards" / name, generation=generation, spec=m.spec, kind="data", seq=seq,
                                    ids=live.ids, codes=live.codes, vectors=live.vectors)
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
    if registry is not None and new:
        from embsdk.store.publish import publish_shards

        publish_shards(registry, root, generation, [e.name for e in new])
    return CompactResult(generation, m2.version, len(m.shards), len(new), int(live.ids.size), tuple(removed))


def verify_store(store_dir: str | Path, generation: str) -> VerifyReport:
    """Check every live shard of a generation: header hash, generation, spec, sizes, sha256 of every file.

    Never raises for damage it finds (it reports it); raises only when there is no store at all.
    """
    root = generation_root(Path(store_dir).expanduser(), generation)
    m = read_manifest(root, generation)
    problems: list[str] = []
    for e in m.shards:
        problems += verify_shard(root / "shards" / e.name, generation=generation, spec=m.spec,
                                 header_sha256=e.header_sha256)
    items = 0
    if not problems:
        try:
            items = len(EmbeddingStore.open(store_dir, generation))
        except EmbsdkError as exc:  # pragma: no cover - verify_shard would have caught it
            problems.append(str(exc))
    orphans = tuple(p.name for p in _orphans(root, {e.name for e in m.shards}))
    return VerifyReport(generation, m.version, len(m.shards), items, tuple(problems), orphans)
