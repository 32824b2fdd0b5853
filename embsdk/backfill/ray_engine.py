"""The Ray Data engine: the same :class:`BatchEmbedder` runs in Ray actors; the driver writes the store.

Here it starts a local Ray instance; give ``ray_address`` (e.g. ``ray://head:10001`` or ``auto``) to run on
a cluster. The exactly-once guarantee is the driver's (atomic commits + resume), so it is the same as the
local engine's whatever Ray retries internally.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from embsdk.backfill.embedder import BatchEmbedder, EmbeddedBatch, EmbedderConfig
from embsdk.backfill.source import BackfillItems
from embsdk.errors import MissingExtraError

__all__ = ["ray_embedded_batches"]


class _EmbedActor:
    """Ray Data callable class: one model session per actor, reused across batches."""

    def __init__(self, config: EmbedderConfig) -> None:
        self.config = config
        self.embedder = BatchEmbedder(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch["id"], dtype=np.int64)
        paths = [str(p) for p in batch["path"]]
        out = self.embedder(ids, paths)
        n, nbytes, dim = len(ids), (self.config.bits + 7) // 8, self.config.dim
        # One output row per input row: failures keep their id, with the reason in "error".
        codes = np.zeros((n, nbytes), np.uint8)
        vectors = np.zeros((n, dim), np.float16)
        error = np.array([""] * n, dtype=object)
        pos = {int(i): k for k, i in enumerate(ids)}
        rows = [pos[int(i)] for i in out.ids]
        codes[rows] = out.codes
        if out.vectors is not None:
            vectors[rows] = out.vectors
        for fid, _path, reason in out.failed:
            error[pos[fid]] = reason or "unreadable"
        return {
            "id": ids,
            "path": np.array(paths, dtype=object),
            "code": codes,
            "vector": vectors,
            "error": error,
        }


def ray_embedded_batches(
    items: BackfillItems, config: EmbedderConfig, batch_size: int, *, ray_address: str | None, workers: int
) -> Iterator[EmbeddedBatch]:
    """Embed *items* on Ray Data; yield driver-side batches in the shape the local engine yields."""
    try:
        import ray
        import ray.data
    except ModuleNotFoundError:
        raise MissingExtraError("ray[data]", "scale") from None
    if len(items) == 0:
        return
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if ray_address:
            ray.init(address=ray_address, **kwargs)
        else:
            ray.init(num_cpus=max(2, workers), **kwargs)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"id": int(i), "path": p} for i, p in zip(items.ids, items.paths)])
        cfg = dataclasses.replace(config, decode_threads=1, ort_threads=1)
        embedded = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=(cfg,),
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            batch_format="numpy",
        )
        for b in embedded.iter_batches(batch_size=batch_size, batch_format="numpy"):
            err = np.asarray(b["error"], dtype=object)
            ok = err == ""
            failed = [(int(i), str(p), str(e)) for i, p, e in zip(b["id"][~ok], b["path"][~ok], err[~ok])]
            vectors = np.asarray(b["vector"])[ok] if config.keep_vectors else None
            yield EmbeddedBatch(
                np.asarray(b["id"], np.int64)[ok], np.asarray(b["code"], np.uint8)[ok], vectors, failed
            )
    finally:
        if started_here:
            ray.shutdown()
