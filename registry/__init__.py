"""The generation registry: SQLAlchemy 2.0 + Alembic, content-addressed artifacts, lineage and lifecycle.

    from registry import Registry
    reg = Registry()                      # $EMB_REGISTRY_URL, else sqlite:///$EMB_HOME/registry.db
    reg.register("unified-v1", artifacts=["model.onnx"], embedding_spec=default_embedding_spec(256))

Rules the registry enforces (details in the modules named):

* Immutability (``_generations``): a generation's spec and the artifacts registered with it never change.
  Later *attachments* (store shards, faiss indexes, eval reports, TensorRT plans) are append-only: adding
  one with an existing attachment name supersedes it, and the old row stays as history. Names of artifacts
  registered at creation, and the role ``model``, can never be attached again.
* Lifecycle (``lifecycle``): candidate → staging → production → deprecated → retired, with the legal
  moves in ``lifecycle.TRANSITIONS``; every move is a ``status_events`` row kept forever.
* Crash safety (``_generations``, ``artifacts``): blobs are written atomically first, then one DB
  transaction writes every row; a crash leaves at most an orphan blob that ``fsck --repair`` removes.
"""

from __future__ import annotations

from registry.entities import (
    AliasEvent,
    ArtifactInfo,
    Comparison,
    ConsumerInfo,
    DatasetRef,
    FsckReport,
    GenerationInfo,
    GenerationSummary,
    LifecycleEvent,
    LineageEdgeInfo,
    LineageGraph,
    MetricKey,
)
from registry.lifecycle import TRANSITIONS, Status
from registry.service import Registry
from registry.validation import LINEAGE_KINDS, default_embedding_spec

__all__ = [
    "LINEAGE_KINDS",
    "TRANSITIONS",
    "AliasEvent",
    "ArtifactInfo",
    "Comparison",
    "ConsumerInfo",
    "DatasetRef",
    "FsckReport",
    "GenerationInfo",
    "GenerationSummary",
    "LifecycleEvent",
    "LineageEdgeInfo",
    "LineageGraph",
    "MetricKey",
    "Registry",
    "Status",
    "default_embedding_spec",
]
