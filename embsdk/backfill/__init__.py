"""Backfill: embed every image of a manifest with a generation and write its embedding store.

Two engines produce the same store with the same exactly-once guarantee:

* ``local`` (default): threads decode images, ONNX Runtime (or a Triton server) embeds them in batches.
* ``ray``: the same per-batch function runs on Ray Data (a local instance here, a cluster address for real).

In both, the driver writes through :class:`embsdk.store.StoreWriter` and commits every ``commit_every``
rows; each commit is atomic. Killed at any point, a rerun with ``resume=True`` skips the ids already in the
store, so every id ends up exactly once (upserts are idempotent even without ``resume``).
"""

from embsdk.backfill.job import BackfillReport, FailedImage, backfill

__all__ = ["BackfillReport", "FailedImage", "backfill"]
