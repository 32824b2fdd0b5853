"""fsck: compare the artifact store with the rows that reference it; repair what is safe to repair."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from tqdm import tqdm

from embsdk._fileio import sha256_file
from registry._core import RegistryCore
from registry.entities import FsckReport
from registry.models import Artifact
from registry.workdirs import PUBLISH_PREFIX, scratch_root, sweep_stale_workdirs

__all__ = ["ORPHAN_GRACE_SECONDS", "MaintenanceMixin"]

ORPHAN_GRACE_SECONDS = 15 * 60
"""Orphans and temp files younger than this may belong to a registration in flight: repair keeps them."""


class MaintenanceMixin(RegistryCore):
    """fsck."""

    def fsck(
        self,
        repair: bool = False,
        *,
        grace_seconds: float = ORPHAN_GRACE_SECONDS,
        progress: bool = False,
        scratch_dir: Path | None = None,
    ) -> FsckReport:
        """Check every blob against its address and every referenced hash against the store.

        Finds: *missing* blobs (a row references a hash with no file: not repairable automatically),
        *corrupt* blobs (bytes do not hash to the address), *orphans* (no row references them: harmless),
        half-written temp files, and *stale work folders* of killed publishes under *scratch_dir* (default
        ``$EMB_HOME/tmp``). With ``repair``: corrupt blobs are moved to ``quarantine/``, orphans and temp files
        older than ``grace_seconds`` and stale work folders are deleted. Nothing referenced is ever deleted,
        nor the folder of a publish still running.
        """
        with self._read("check the artifact store") as session:
            referenced = set(session.scalars(sa.select(Artifact.sha256).distinct()))
        blobs = dict(self.store.iter_blobs())
        temp_files = list(self.store.iter_temp_files())
        corrupt = {
            sha
            for sha, path in tqdm(sorted(blobs.items()), desc="fsck", unit="blob", disable=not progress)
            if sha256_file(path) != sha
        }
        orphans = sorted(set(blobs) - referenced)
        missing = sorted(referenced - set(blobs))
        removed: list[str] = []
        quarantined: list[str] = []
        kept: list[str] = []
        if repair:
            cutoff = time.time() - grace_seconds
            for sha in sorted(corrupt):
                self.store.quarantine(blobs[sha])
                quarantined.append(sha)
            for sha in orphans:
                if sha in corrupt:
                    continue
                if blobs[sha].stat().st_mtime > cutoff:
                    kept.append(sha)
                    continue
                self.store.remove(blobs[sha])
                removed.append(sha)
            for tmp in temp_files:
                if tmp.stat().st_mtime > cutoff:
                    kept.append(str(tmp.relative_to(self.store.root)))
                    continue
                self.store.remove(tmp)
                removed.append(str(tmp.relative_to(self.store.root)))
        stale_dirs = sweep_stale_workdirs(
            scratch_dir or scratch_root(), PUBLISH_PREFIX, remove=repair, grace_seconds=grace_seconds
        )
        if repair:
            removed += [str(p) for p in stale_dirs]
        return FsckReport(
            blobs_checked=len(blobs),
            referenced=len(referenced),
            missing=tuple(missing),
            corrupt=tuple(sorted(corrupt)),
            orphans=tuple(orphans),
            temp_files=tuple(str(t.relative_to(self.store.root)) for t in temp_files),
            repaired=repair,
            removed=tuple(removed),
            quarantined=tuple(quarantined),
            kept_recent_orphans=tuple(kept),
            stale_workdirs=tuple(str(p) for p in stale_dirs),
        )
