"""Register store shards and search indexes as artifacts of their generation in the registry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PublishedShard", "publish_files", "publish_shards"]


@dataclass(frozen=True)
class PublishedShard:
    """One file registered in the registry: its name there and what ``add_artifact`` returned."""

    artifact_name: str
    path: Path
    artifact: Any


def publish_files(registry: Any, generation: str, files: Iterable[tuple[str, Path]]) -> list[PublishedShard]:
    """Register each ``(artifact_name, path)`` with ``registry.add_artifact(..., role="attachment")``."""
    out = []
    for artifact_name, path in files:
        art = registry.add_artifact(generation, Path(path), artifact_name=artifact_name, role="attachment")
        out.append(PublishedShard(artifact_name, Path(path), art))
    return out


def publish_shards(
    registry: Any, root: Path, generation: str, shard_names: Iterable[str]
) -> list[PublishedShard]:
    """Register every file of the given shard folders as ``store/<shard>/<file>`` artifacts."""
    files = []
    for name in shard_names:
        for f in sorted((root / "shards" / name).iterdir()):
            files.append((f"store/{name}/{f.name}", f))
    return publish_files(registry, generation, files)
