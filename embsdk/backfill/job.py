"""``backfill()``: the resumable, exactly-once job behind ``emb backfill``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embsdk._fileio import write_json_atomic
from embsdk.backfill.embedder import BatchEmbedder, EmbeddedBatch, EmbedderConfig
from embsdk.backfill.source import BackfillItems, read_items
from embsdk.config import get_settings
from embsdk.errors import InferenceError, StoreError

__all__ = ["BackfillReport", "FailedImage", "backfill"]

Engine = Literal["local", "ray"]

logger = logging.getLogger(__name__)


def _noop(*_args: object) -> None:
    return None


after_commit: Callable[[int], None] = _noop
"""Test hook, called with the number of commits so far after each store commit (fault tests pause here)."""


@dataclass(frozen=True)
class FailedImage:
    id: int
    path: str
    reason: str


@dataclass
class BackfillReport:
    """What a backfill did. ``embedded + failed + already_present == total``."""

    generation: str
    manifest: str
    engine: str
    total: int
    already_present: int = 0
    embedded: int = 0
    failed: list[FailedImage] = field(default_factory=list)
    commits: int = 0
    seconds: float = 0.0
    report_path: str | None = None

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed_count"] = len(self.failed)
        d["images_per_second"] = round(self.images_per_second, 2)
        return d


def _config_for(
    version: str, *, url: str | None, protocol: str, registry_url: str | None, keep_vectors: bool
) -> tuple[EmbedderConfig, dict[str, Any]]:
    """Resolve the generation once, through the lifecycle rule: what to run, and the spec of its store.

    Raises:
        GenerationNotFound / RetiredGeneration: before anything is read or written.
    """
    from embsdk.serving.resolve import registry_target

    target = registry_target(
        version, registry_url=registry_url, stacklevel=3
    )  # points at backfill()'s caller
    spec = target.embedding_spec
    if url is None and target.onnx_path is None:
        raise InferenceError(
            f"Generation {target.generation!r} has no ONNX artifact; pass --url to backfill through Triton."
        )
    config = EmbedderConfig(
        generation=target.generation,
        family=target.family,
        input_spec=target.input_spec.to_dict(),
        bits=target.bits,
        dim=int(spec.get("dim", target.bits)),
        onnx_path=str(target.onnx_path) if target.onnx_path else None,
        url=url,
        protocol=protocol,
        keep_vectors=keep_vectors,
    )
    return config, spec


def _record_source(writer: Any, manifest: str | Path, rows: int) -> None:
    """Record in the store's MANIFEST.json (under the writer's lock) the manifest it was filled from, with its
    sha256, so ``emb search`` can print the label and image path of each hit."""
    import hashlib

    from embsdk.store._manifest import read_manifest, write_manifest

    path = Path(manifest).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    m = read_manifest(writer.root, writer.generation)
    write_manifest(writer.root, m.with_source(str(path), digest.hexdigest(), rows))


def _chunks(items: BackfillItems, size: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    for start in range(0, len(items), size):
        yield items.ids[start : start + size], items.paths[start : start + size]


def _local_batches(items: BackfillItems, config: EmbedderConfig, batch_size: int) -> Iterator[EmbeddedBatch]:
    """Decode the next batch in a background thread while the model runs on the current one."""
    embedder = BatchEmbedder(config)
    decoded: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for ids, paths in _chunks(items, batch_size):
                if stop.is_set():
                    return
                decoded.put(embedder.decode(ids, paths))
            decoded.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, which re-raises it
            decoded.put(exc)

    thread = threading.Thread(target=produce, name="backfill-decode", daemon=True)
    thread.start()
    try:
        while (item := decoded.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield embedder.infer(*item)
    finally:
        stop.set()
        embedder.close()


def _ray_batches(
    items: BackfillItems, config: EmbedderConfig, batch_size: int, *, ray_address: str | None, workers: int
) -> Iterator[EmbeddedBatch]:
    from embsdk.backfill.ray_engine import ray_embedded_batches

    yield from ray_embedded_batches(items, config, batch_size, ray_address=ray_address, workers=workers)


def backfill(
    version: str,
    manifest: str | Path,
    *,
    batch_size: int = 32,
    resume: bool = False,
    engine: Engine = "local",
    url: str | None = None,
    protocol: Literal["http", "grpc"] = "http",
    commit_every: int = 1024,
    keep_vectors: bool = True,
    ray_address: str | None = None,
    workers: int = 2,
    registry_url: str | None = None,
    store_dir: str | Path | None = None,
    register_shards: bool = True,
    progress: bool = True,
    report_path: str | Path | None = None,
) -> BackfillReport:
    """Embed every image of *manifest* with generation *version* and write its store.

    Args:
        version: generation name or alias.
        manifest: CSV/Parquet with ``id`` and ``image`` columns.
        batch_size: images per model call.
        resume: skip ids already in the store (after a crash or kill).
        engine: ``"local"`` (threads + ONNX Runtime/Triton) or ``"ray"`` (Ray Data).
        url, protocol: embed through this Triton server instead of in-process ONNX Runtime.
        commit_every: rows per atomic store commit (the most a kill can lose).
        keep_vectors: also store float16 embeddings (for re-ranking).
        ray_address: a Ray cluster address; None starts a local instance.
        workers: Ray actors embedding in parallel.
        register_shards: register each committed shard as an artifact of the generation.
        report_path: where to write the JSON report (default ``$EMB_HOME/reports/backfill-<gen>-<time>.json``).

    Raises:
        ManifestError: bad manifest (missing columns, duplicate ids, …).
        GenerationNotFound / RetiredGeneration: *version* cannot be used.
        InferenceError / ServerUnavailable: the model cannot run.
    """
    from tqdm.auto import tqdm

    from embsdk.store import StoreWriter

    if batch_size <= 0 or commit_every <= 0:
        raise StoreError("batch_size and commit_every must be positive.")
    settings = get_settings()
    started = time.perf_counter()
    items = read_items(manifest)
    config, spec = _config_for(
        version, url=url, protocol=protocol, registry_url=registry_url, keep_vectors=keep_vectors
    )
    writer = StoreWriter(Path(store_dir) if store_dir else settings.store_dir, config.generation, spec)
    report = BackfillReport(config.generation, str(manifest), engine, total=len(items))
    if resume:
        present = writer.contains(items.ids)
        report.already_present = int(present.sum())
        items = items.take(~present)
    logger.info(
        "backfill %s: %d item(s) to embed (%d already present), engine %s",
        config.generation,
        len(items),
        report.already_present,
        engine,
    )

    registry = None
    if register_shards:
        from registry import Registry

        registry = Registry(registry_url)
    batches = (
        _local_batches(items, config, batch_size)
        if engine == "local"
        else _ray_batches(items, config, batch_size, ray_address=ray_address, workers=workers)
    )
    bar = tqdm(
        total=len(items),
        unit="img",
        desc=f"backfill {config.generation}",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for batch in batches:
            if batch.ids.size:
                writer.upsert(batch.ids, batch.codes, batch.vectors if keep_vectors else None)
            report.failed.extend(FailedImage(*f) for f in batch.failed)
            report.embedded += int(batch.ids.size)
            bar.update(int(batch.ids.size) + len(batch.failed))
            bar.set_postfix(failed=len(report.failed), refresh=False)
            if writer.pending >= commit_every:
                writer.commit(registry=registry)
                report.commits += 1
                after_commit(report.commits)
        if writer.pending:
            writer.commit(registry=registry)
            report.commits += 1
        _record_source(writer, manifest, report.total)
    finally:
        bar.close()
        writer.close()  # releases the generation's store lock
        if registry is not None:
            registry.close()
    report.seconds = time.perf_counter() - started
    out = (
        Path(report_path)
        if report_path
        else (
            settings.home
            / "reports"
            / f"backfill-{config.generation}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report.report_path = str(out)
    write_json_atomic(out, report.to_dict())
    logger.info(
        "backfill %s: %d embedded, %d failed, %d commit(s) in %.1f s; report %s",
        config.generation,
        report.embedded,
        len(report.failed),
        report.commits,
        report.seconds,
        out,
    )
    return report
