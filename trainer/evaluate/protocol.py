"""Which images query which gallery, per task: the evaluation protocol, read from the manifest.

* A **photo task** (e.g. ``coarse``, ``fine``): queries are the photos of the evaluated split (``test``
  by default) labelled for the task; the gallery is the ``train`` photos labelled for the task. A query
  is right when a retrieved gallery photo has the same class.
* A **catalog task** (e.g. ``catalog``: phone photo → iconic product image): a task is a catalog task when
  some of its labelled rows have ``domain == "catalog"``. Queries are the evaluated split's labelled
  non-catalog photos; the gallery is every labelled catalog image (whatever its split).

Rows with an empty label for a task take no part in that task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from embsdk.errors import ManifestError

if TYPE_CHECKING:
    from trainer.data.manifest import Manifest

__all__ = ["CATALOG_DOMAIN", "GALLERY_SPLIT", "TaskProtocol", "build_protocols"]

CATALOG_DOMAIN = "catalog"
GALLERY_SPLIT = "train"


@dataclass(frozen=True)
class TaskProtocol:
    """Queries and gallery of one task, as manifest row numbers with their labels."""

    task: str
    kind: Literal["photo", "catalog"]
    query_rows: np.ndarray
    gallery_rows: np.ndarray
    query_labels: np.ndarray
    gallery_labels: np.ndarray

    def describe(self) -> str:
        """One line for humans, e.g. ``coarse: 2485 test photos → 2640 train photos``."""
        target = "catalog images" if self.kind == "catalog" else f"{GALLERY_SPLIT} photos"
        return f"{self.task}: {len(self.query_rows)} query photos → {len(self.gallery_rows)} {target}"


def build_protocols(
    manifest: Manifest, *, split: str = "test", tasks: list[str] | None = None
) -> list[TaskProtocol]:
    """Build the query/gallery sets of each task for evaluating *split*.

    Args:
        manifest: the loaded manifest (needs a ``split`` column).
        split: the held-out split whose photos are the queries (``test`` or ``val``).
        tasks: the tasks to evaluate (default: every ``task.<name>`` column).

    Returns:
        One :class:`TaskProtocol` per task, in the order of *tasks*.

    Raises:
        ManifestError: no ``split`` column, ``split`` is the gallery split, a task is not in the manifest,
            or a task has no query or no gallery image.

    Example:
        >>> [p.describe() for p in build_protocols(Manifest.load("grocery.csv"))]  # doctest: +SKIP
        ['catalog: 2485 query photos → 81 catalog images', 'coarse: ...', 'fine: ...']
    """
    rows = manifest.rows
    where = str(manifest.path)
    if "split" not in rows.columns:
        raise ManifestError(
            "the manifest has no 'split' column; evaluation needs held-out queries", path=where
        )
    if split == GALLERY_SPLIT:
        raise ManifestError(
            f"cannot evaluate the {GALLERY_SPLIT!r} split: it is the gallery; use --split test or val",
            path=where,
        )
    tasks = list(tasks) if tasks else manifest.tasks
    splits = rows["split"].astype(str).to_numpy()
    if not (splits == split).any():
        present = sorted(set(splits.tolist()) - {""})
        raise ManifestError(
            f"the split {split!r} is empty (splits present: {', '.join(present) or 'none'})", path=where
        )
    domains = (
        rows["domain"].fillna("").astype(str).to_numpy()
        if "domain" in rows.columns
        else np.full(len(rows), "")
    )
    is_catalog = domains == CATALOG_DOMAIN
    out = []
    for task in tasks:
        labels = manifest.labels(task).to_numpy(dtype=object)  # raises ManifestError for an unknown task
        labelled = np.array([v is not None for v in labels], dtype=bool)
        kind: Literal["photo", "catalog"] = "catalog" if (labelled & is_catalog).any() else "photo"
        query = labelled & ~is_catalog & (splits == split)
        gallery = (
            labelled & is_catalog if kind == "catalog" else labelled & ~is_catalog & (splits == GALLERY_SPLIT)
        )
        if not query.any():
            raise ManifestError(
                f"task {task!r} has no labelled {split!r} photos to use as queries", path=where
            )
        if not gallery.any():
            what = "catalog images" if kind == "catalog" else f"labelled {GALLERY_SPLIT!r} photos"
            raise ManifestError(f"task {task!r} has no {what} to use as the gallery", path=where)
        q_rows, g_rows = np.flatnonzero(query), np.flatnonzero(gallery)
        out.append(
            TaskProtocol(
                task=task,
                kind=kind,
                query_rows=q_rows,
                gallery_rows=g_rows,
                query_labels=labels[q_rows],
                gallery_labels=labels[g_rows],
            )
        )
    return out
