"""``emb eval`` as a library call: manifest → protocols → embeddings (cached) → metrics → report folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .embed import EmbeddedRows, embed_paths, load_cached_embeddings, save_embeddings
from .models import load_embedder
from .protocol import build_protocols
from .report import write_report
from .scoring import score_tasks

__all__ = ["CACHE_NAME", "evaluate"]

CACHE_NAME = "embeddings.npz"


def evaluate(
    model: str | Path,
    manifest: str | Path,
    report_dir: str | Path,
    *,
    split: str = "test",
    tasks: list[str] | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    grid_queries: int = 6,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run folder (or ``imagenet:<backbone>``) on a manifest and write the report folder.

    The manifest and protocol are checked before the model is loaded; embeddings are cached in
    ``report_dir/embeddings.npz`` (keyed on the weights, the input contract and the manifest hash), so a
    second call only re-scores and re-draws.

    Args:
        model: a run folder written by ``emb train``, or ``imagenet:<backbone>``.
        manifest: the manifest (CSV or Parquet).
        report_dir: the report folder (created).
        split: the held-out split whose photos query the galleries.
        tasks: tasks to evaluate (default: all the manifest's tasks).
        batch_size: images per forward pass.
        workers: DataLoader workers decoding images (default: min(2, CPUs)).
        grid_queries: queries shown per result grid.
        progress: show progress bars.

    Returns:
        The content of ``metrics.json`` (plus the report's file names under ``"files"``).

    Raises:
        ManifestError: unreadable manifest, unknown task, empty split, a task without queries or gallery.
        RunError: *model* is not a run folder nor ``imagenet:<backbone>``.

    Example:
        >>> evaluate("runs/unified", "data/grocery.csv", "reports/unified")["tasks"]["fine"]["binary"]["R@1"]  # doctest: +SKIP
        0.71
    """
    from trainer.data.manifest import Manifest

    m = Manifest.load(manifest)
    protocols = build_protocols(m, split=split, tasks=tasks)
    embedder = load_embedder(model)
    report_dir = Path(report_dir)
    rows = np.unique(np.concatenate([np.concatenate([p.query_rows, p.gallery_rows]) for p in protocols]))
    key = f"{embedder.cache_key}|manifest:{m.sha256}"
    cache = report_dir / CACHE_NAME
    embedded = load_cached_embeddings(cache, key=key, rows=rows)
    from_cache = embedded is not None
    if embedded is None:
        workers = min(2, os.cpu_count() or 1) if workers is None else workers
        paths = [m.image_path(int(r)) for r in rows]
        floats, valid, errs, ips = embed_paths(
            embedder.module,
            paths,
            embedder.input_spec,
            batch_size=batch_size,
            workers=workers,
            desc="eval embed",
            progress=progress,
        )
        errors = {int(r): e for r, ok, e in zip(rows, valid, errs, strict=True) if not ok}
        embedded = EmbeddedRows(rows=rows, floats=floats, valid=valid, errors=errors, images_per_second=ips)
        save_embeddings(cache, embedded, key=key)
    results = score_tasks(protocols, embedded)
    header = {
        "model": embedder.name,
        "manifest": str(m.path),
        "manifest_sha256": m.sha256,
        "split": split,
        "dim": int(embedded.floats.shape[1]),
        "images": len(embedded.rows),
        "skipped_images": int((~embedded.valid).sum()),
        "skipped": [f"row {r}: {e}" for r, e in sorted(embedded.errors.items())[:20]],
        "images_per_second": round(float(embedded.images_per_second), 2),
        "cached": from_cache,
        "input_spec": embedder.input_spec.to_dict(),
    }
    return write_report(report_dir, results, header, image_path=m.image_path, grid_queries=grid_queries)
