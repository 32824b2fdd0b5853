"""Keep the Triton repository in step with the registry (the registry is the source of truth).

``emb publish`` adds each new generation as it registers it. :func:`sync_from_registry` (re)builds a
repository from the registry alone, e.g. on a fresh serving machine: every generation with a
``model.onnx`` artifact that is not retired gets a version (in registration order); retired ones are
removed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["registered_in_registry", "remove_retired", "retired_in_registry", "sync_from_registry"]


def registered_in_registry(registry_url: str | None = None) -> Callable[[str], bool] | None:
    """A predicate ``name -> bool`` telling whether the registry holds a generation; None if no registry is usable."""
    try:
        from registry import Registry
    except ImportError:
        return None
    from embsdk.errors import GenerationNotFound

    def is_registered(name: str) -> bool:
        with Registry(registry_url) as reg:
            try:
                return reg.get(name).name == name
            except GenerationNotFound:
                return False

    return is_registered


def retired_in_registry(registry: Any) -> set[str]:
    """Names of the generations ``registry`` (an open :class:`registry.Registry`) has retired (one query)."""
    return {summary.name for summary in registry.list(status="retired")}


def remove_retired(repository: str | Path | None, retired: Iterable[str]) -> list[str]:
    """Stop serving every generation of ``retired`` the repository serves; the names removed.

    Each removal re-renders its family's ``config.pbtxt`` (a running ``emb serve --watch`` then reloads it).
    """
    from triton_models.repository import ModelRepository

    repo = ModelRepository(repository)
    served = {row["generation"] for row in repo.served()}
    removed = []
    for name in sorted(served & set(retired)):
        repo.remove(name)
        removed.append(name)
    return removed


def sync_from_registry(
    repository: str | Path | None = None, *, registry_url: str | None = None, family: str | None = None
) -> dict[str, list[Any]]:
    """Add every servable registered generation missing from the repository; remove retired ones.

    Returns:
        ``{"added": [(generation, version)], "removed": [generation], "skipped": [(generation, reason)]}``.
    """
    from registry import Registry
    from triton_models.repository import ModelRepository

    repo = ModelRepository(repository)
    repo.reconcile(registered_in_registry(registry_url))
    done: dict[str, list[Any]] = {"added": [], "removed": [], "skipped": []}
    with Registry(registry_url) as reg:
        for summary in reg.list(family=family):
            served = repo.locate(summary.name)
            if summary.status == "retired":
                if served is not None:
                    done["removed"] += remove_retired(repo.root, [summary.name])
                continue
            if served is not None:
                continue
            gen = reg.get(summary.name)
            names = {a.name for a in gen.artifacts if a.current}
            if not {"model.onnx", "export.json"} <= names:
                done["skipped"].append((gen.name, "no model.onnx/export.json artifacts"))
                continue
            work = Path(tempfile.mkdtemp(prefix=f"sync-{gen.name}-"))
            try:
                for name in ("model.onnx", "export.json"):
                    shutil.copyfile(reg.artifact_path(gen.name, name, verify=True), work / name)
                done["added"].append((gen.name, repo.add(work, generation=gen.name, family=gen.family)))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return done
