"""``emb eval`` as a library call: manifest → protocols → embeddings (cached) → metrics → report folder."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsdk.errors import ConfigError, ImageDecodeError

from .embed import (
    ENGINES,
    EmbeddedRows,
    embed_paths,
    load_cached_embeddings,
    onnx_runner,
    run_paths,
    save_embeddings,
    torch_runner,
)
from .models import Embedder, load_embedder
from .protocol import build_protocols
from .report import write_report
from .scoring import score_tasks

if TYPE_CHECKING:
    from trainer.data.manifest import Manifest

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
    engine: str = "auto",
    reference: bool = False,
) -> dict[str, Any]:
    """Evaluate a run folder (or ``imagenet:<backbone>``) on a manifest and write the report folder.

    The manifest and protocol are checked before the model is loaded; embeddings are cached in
    ``report_dir/embeddings.npz`` (keyed on the weights, the input contract and the manifest hash), so a
    second call only re-scores and re-draws.

    Embedding goes backbone → pooled features → head. Features come from the frozen-backbone feature
    cache where it has them (view 0 of the training run's cache: the evaluation transform of the training
    rows; then an evaluation cache of the other rows, keyed the same way), and the rest from the backbone
    exported to ONNX and run by ONNX Runtime (``engine="auto"``/``"onnxruntime"``; checked against PyTorch
    on the first batch, PyTorch when that fails) or PyTorch (``engine="torch"``). Ranking is exact top-k with
    faiss (:func:`~.metrics.rank_topk`); ``reference=True`` ranks with the numpy reference instead.

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
        engine: ``auto`` (ONNX Runtime when installed), ``onnxruntime`` or ``torch``; ``torch`` also skips the
            feature caches and runs the whole model on every image (the pre-ONNX path).
        reference: rank with the numpy reference (full sort) instead of faiss.

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

    if engine not in ENGINES:
        raise ConfigError(f"unknown embedding engine {engine!r}; use one of: {', '.join(ENGINES)}")
    m = Manifest.load(manifest)
    protocols = build_protocols(m, split=split, tasks=tasks)
    embedder = load_embedder(model)
    report_dir = Path(report_dir)
    rows = np.unique(np.concatenate([np.concatenate([p.query_rows, p.gallery_rows]) for p in protocols]))
    key = f"{embedder.cache_key}|manifest:{m.sha256}"
    cache = report_dir / CACHE_NAME
    embedded = load_cached_embeddings(cache, key=key, rows=rows)
    from_cache = embedded is not None
    sources: dict[str, Any] = {"engine": "cache"}
    if embedded is None:
        workers = min(2, os.cpu_count() or 1) if workers is None else workers
        embedded, sources = _embed_rows(
            embedder, m, rows, engine=engine, batch_size=batch_size, workers=workers, progress=progress
        )
        save_embeddings(cache, embedded, key=key)
    results = score_tasks(protocols, embedded, reference=reference)
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
        "embedding_sources": sources,
        "input_spec": embedder.input_spec.to_dict(),
    }
    return write_report(report_dir, results, header, image_path=m.image_path, grid_queries=grid_queries)


def _training_rows(m: Manifest, tasks: list[str]) -> list[int]:
    """The rows ``emb train`` cached features for: ``train`` rows labelled for some task (trainer/_setup.py)."""
    columns = {t: m.labels(t).tolist() for t in tasks if t in m.tasks}
    return [r for r in m.indices("train") if any(col[r] is not None for col in columns.values())]


def _embed_rows(
    embedder: Embedder,
    m: Manifest,
    rows: np.ndarray,
    *,
    engine: str,
    batch_size: int,
    workers: int,
    progress: bool,
) -> tuple[EmbeddedRows, dict[str, Any]]:
    """Embed manifest *rows*: cached backbone features where they exist, ONNX Runtime (or PyTorch) for the rest."""
    import torch

    from embsdk.config import get_settings
    from embsdk.preprocess import load_image
    from trainer.features import read_cached_features, write_cached_features

    paths = [m.image_path(int(r)) for r in rows]
    spec, backbone, head = embedder.input_spec, embedder.backbone, embedder.head
    start = time.perf_counter()
    if engine == "torch" or backbone is None or head is None:
        floats, valid, errs, ips = embed_paths(
            embedder.module,
            paths,
            spec,
            batch_size=batch_size,
            workers=workers,
            desc="eval embed",
            progress=progress,
        )
        errors = {int(r): e for r, ok, e in zip(rows, valid, errs, strict=True) if not ok}
        embedded = EmbeddedRows(rows=rows, floats=floats, valid=valid, errors=errors, images_per_second=ips)
        return embedded, {"engine": "torch", "computed": len(rows)}

    feats = np.zeros((len(rows), backbone.feature_dim), np.float32)
    have = np.zeros(len(rows), bool)
    valid = np.ones(len(rows), bool)
    errors: dict[int, str] = {}
    sources: dict[str, Any] = {"engine": None, "training_cache": 0, "eval_cache": 0, "computed": 0}
    tc = embedder.training_cache
    if tc and tc.get("manifest_sha256") == m.sha256:  # frozen backbone: its training features, view 0
        train_rows = _training_rows(m, tc["tasks"])
        arr = read_cached_features(backbone, spec, m, train_rows, views=tc["views"], seed=tc["seed"])
        if arr is not None:
            where = {r: i for i, r in enumerate(train_rows)}
            for i, r in enumerate(rows.tolist()):
                j = where.get(int(r))
                if j is not None:
                    feats[i], have[i] = arr[0, j], True
            sources["training_cache"] = int(have.sum())
    rest = np.flatnonzero(~have)
    if len(rest):
        arr = read_cached_features(backbone, spec, m, rows[rest].tolist(), extra="eval")
        if arr is not None:
            feats[rest] = arr[0]
            sources["eval_cache"] = len(rest)
        else:
            fn = None
            if engine in ("auto", "onnxruntime"):
                check = []
                for i in rest[:8]:
                    try:
                        check.append(load_image(paths[i], spec))
                    except ImageDecodeError:
                        continue
                    if len(check) == 4:
                        break
                fn = onnx_runner(
                    backbone,
                    spec,
                    cache_dir=get_settings().home / "cache" / "onnx",
                    check=np.stack(check) if check else None,
                )
            sources["engine"] = "onnxruntime" if fn is not None else "torch"
            fn = fn or torch_runner(backbone)
            f, ok, errs, _ips = run_paths(
                fn,
                [paths[i] for i in rest],
                spec,
                batch_size=batch_size,
                workers=workers,
                desc="eval embed",
                progress=progress,
            )
            feats[rest], valid[rest] = f, ok
            errors = {int(rows[i]): e for i, good, e in zip(rest, ok, errs, strict=True) if not good}
            sources["computed"] = len(rest)
            if ok.all():
                write_cached_features(f[None], backbone, spec, m, rows[rest].tolist(), extra="eval")
    with torch.inference_mode():
        floats = head.eval()(torch.from_numpy(feats)).float().numpy()
    floats[~valid] = 0.0
    ips = len(rows) / max(time.perf_counter() - start, 1e-9)
    embedded = EmbeddedRows(rows=rows, floats=floats, valid=valid, errors=errors, images_per_second=ips)
    return embedded, sources
