"""Plain, frozen results of the registry service. ORM rows never leave the service layer; these do.

Every class has ``to_dict()`` giving JSON-ready values (datetimes as ISO strings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from embsdk.spec import EmbeddingSpec

__all__ = [
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
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class MetricKey(_Dict):
    """Parsed view of a metric key ``task/dataset/metric/variant`` (e.g. ``coarse/grocery-test/r@1/binary``)."""

    key: str
    task: str | None
    dataset: str | None
    metric: str | None
    variant: str | None

    @classmethod
    def parse(cls, key: str) -> MetricKey:
        parts: list[str | None] = list(key.split("/"))
        if len(parts) == 1:  # a bare metric name
            return cls(key, None, None, parts[0], None)
        parts += [None] * (4 - len(parts))
        return cls(key, parts[0], parts[1], parts[2], "/".join(p for p in parts[3:] if p) or None)


@dataclass(frozen=True)
class DatasetRef(_Dict):
    """A dataset a generation was trained or evaluated on: name, manifest content hash, row count."""

    name: str
    sha256: str
    rows: int | None = None
    role: str = "train"


@dataclass(frozen=True)
class ArtifactInfo(_Dict):
    """One stored file of a generation. ``current`` is False for an attachment superseded by a newer one."""

    name: str
    role: str
    sha256: str
    size: int
    at_creation: bool
    created_at: datetime
    created_by: str
    current: bool = True


@dataclass(frozen=True)
class LineageEdgeInfo(_Dict):
    """``child`` was made from ``parent`` in the way ``kind`` says."""

    child: str
    parent: str
    kind: str


@dataclass(frozen=True)
class GenerationSummary(_Dict):
    """A row of ``list()``: the headline facts of a generation."""

    name: str
    family: str
    status: str
    created_at: datetime
    created_by: str
    description: str


@dataclass(frozen=True)
class GenerationInfo(_Dict):
    """Everything the registry knows about one generation."""

    name: str
    family: str
    status: str
    created_at: datetime
    created_by: str
    description: str
    code_version: str
    training_config: dict[str, Any] | None
    embedding_spec: dict[str, Any] | None
    input_spec: dict[str, Any] | None
    parents: tuple[LineageEdgeInfo, ...] = ()
    children: tuple[LineageEdgeInfo, ...] = ()
    artifacts: tuple[ArtifactInfo, ...] = ()
    datasets: tuple[DatasetRef, ...] = ()
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    resolved_from: str | None = None  # the alias this came from, when resolve() was given one

    def artifact(self, name: str) -> ArtifactInfo:
        """The current artifact called *name* (KeyError if none)."""
        for a in self.artifacts:
            if a.name == name and a.current:
                return a
        raise KeyError(name)

    @property
    def metric_keys(self) -> tuple[MetricKey, ...]:
        """Parsed view of the metric keys (task, dataset, metric, variant)."""
        return tuple(MetricKey.parse(k) for k in self.metrics)

    @property
    def bits(self) -> int | None:
        return (self.embedding_spec or {}).get("bits")

    @property
    def spec(self) -> EmbeddingSpec | None:
        """The embedding spec, typed (None when the generation records none).

        Raises:
            InvalidEmbeddingSpec: the recorded spec breaks the contract (e.g. it has no ``bits``).
        """
        return EmbeddingSpec.from_dict(self.embedding_spec) if self.embedding_spec else None


@dataclass(frozen=True)
class LifecycleEvent(_Dict):
    """One status transition (``from_status`` is None for the registration itself)."""

    generation: str
    from_status: str | None
    to_status: str
    at: datetime
    who: str
    reason: str | None


@dataclass(frozen=True)
class AliasEvent(_Dict):
    """One move of an alias."""

    alias: str
    generation: str
    previous: str | None
    at: datetime
    who: str
    reason: str | None


@dataclass(frozen=True)
class ConsumerInfo(_Dict):
    """A downstream team reading a generation (``ref`` is a name or an alias; ``generation`` is what it resolves to now)."""

    team: str
    ref: str
    generation: str | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class LineageGraph(_Dict):
    """Ancestors and descendants of ``root`` (nearest first) and every edge among them."""

    root: str
    ancestors: tuple[str, ...]
    descendants: tuple[str, ...]
    edges: tuple[LineageEdgeInfo, ...]


@dataclass(frozen=True)
class Comparison(_Dict):
    """Side-by-side metrics and spec differences of two generations."""

    a: str
    b: str
    metrics: tuple[tuple[str, float | None, float | None, float | None], ...]  # key, a, b, b - a
    spec_differences: dict[str, tuple[Any, Any]]
    input_differences: dict[str, tuple[Any, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metrics": [{"key": k, "a": x, "b": y, "delta": d} for k, x, y, d in self.metrics],
            "spec_differences": {k: list(v) for k, v in self.spec_differences.items()},
            "input_differences": {k: list(v) for k, v in self.input_differences.items()},
        }


@dataclass(frozen=True)
class FsckReport(_Dict):
    """What ``fsck`` found (and, with ``repair``, what it did)."""

    blobs_checked: int
    referenced: int
    missing: tuple[str, ...]  # referenced sha256s with no blob: cannot be repaired automatically
    corrupt: tuple[str, ...]  # blobs whose bytes do not hash to their address
    orphans: tuple[str, ...]  # blobs no row references (harmless; removed by repair after the grace period)
    temp_files: tuple[str, ...]  # half-written files from interrupted writes
    repaired: bool = False
    removed: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    kept_recent_orphans: tuple[str, ...] = ()
    stale_workdirs: tuple[str, ...] = ()  # $EMB_HOME/tmp/publish-* folders of publishes that were killed

    @property
    def ok(self) -> bool:
        """True when nothing referenced is missing or corrupt (orphans and temp files are harmless)."""
        return not self.missing and not self.corrupt

    @property
    def clean(self) -> bool:
        """True when there is nothing at all to report."""
        return self.ok and not self.orphans and not self.temp_files and not self.stale_workdirs

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["ok"], d["clean"] = self.ok, self.clean
        return d
