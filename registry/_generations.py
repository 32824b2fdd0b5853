"""Registering, reading, listing, attaching to and comparing generations."""

from __future__ import annotations

import builtins
import json
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from embsdk._faults import crash_point
from embsdk.errors import (
    ArtifactSourceNotFound,
    DuplicateGeneration,
    GenerationNotFound,
    ImmutableGeneration,
    IntegrityError,
    InvalidRegistryInput,
    RegistryError,
)
from embsdk.spec import EmbeddingSpec
from registry._core import _Q, RegistryCore
from registry.artifacts import StoredBlob, validate_artifact_name
from registry.entities import (
    ArtifactInfo,
    Comparison,
    DatasetRef,
    GenerationInfo,
    GenerationSummary,
    LineageEdgeInfo,
)
from registry.lifecycle import Status
from registry.models import (
    Artifact,
    Dataset,
    Generation,
    GenerationDataset,
    LineageEdge,
    Metric,
    StatusEvent,
    utcnow,
)
from registry.validation import (
    check_embedding_spec,
    check_kind,
    check_metrics,
    check_name,
    dataset_from_path,
    derive_family,
    parse_parent_spec,
)

__all__ = ["GenerationsMixin", "default_code_version"]

ArtifactArg = Path | str | tuple[str, Path | str]
_ROLE_BY_SUFFIX = {
    ".onnx": "model",
    ".pt": "model",
    ".safetensors": "model",
    ".plan": "plan",
    ".engine": "plan",
    ".json": "config",
    ".yaml": "config",
    ".yml": "config",
}


@cache
def _git_commit(cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", cwd, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def default_code_version() -> str:
    """The git commit of the current directory, else ``embsdk==<version>``."""
    commit = _git_commit(str(Path.cwd()))
    if commit:
        return f"git:{commit}"
    from embsdk import __version__

    return f"embsdk=={__version__}"


def _jsonable_or_fail(value: Any, what: str) -> Any:
    if value is None:
        return None
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidRegistryInput(f"{what} must be JSON-serializable: {exc}") from None


def _normalize_artifacts(artifacts: Sequence[ArtifactArg]) -> list[tuple[str, Path, str]]:
    out: list[tuple[str, Path, str]] = []
    for item in artifacts:
        name, path = (item[0], Path(item[1])) if isinstance(item, tuple) else (Path(item).name, Path(item))
        validate_artifact_name(name)
        out.append((name, path, _ROLE_BY_SUFFIX.get(path.suffix.lower(), "model")))
    names = [n for n, _, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidRegistryInput(
            f"Artifact names must be unique within a generation; repeated: {', '.join(dupes)}."
        )
    return out


class GenerationsMixin(RegistryCore):
    """register / get / resolve / list / add_artifact / artifact_path / add_metrics / compare."""

    def register(
        self,
        name: str,
        *,
        family: str | None = None,
        artifacts: Sequence[ArtifactArg] = (),
        parents: Sequence[tuple[str, str] | str] = (),
        datasets: Sequence[DatasetRef | Path] = (),
        embedding_spec: EmbeddingSpec | Mapping[str, Any] | None = None,
        input_spec: Mapping[str, Any] | Any | None = None,
        training_config: Mapping[str, Any] | None = None,
        code_version: str | None = None,
        description: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> GenerationInfo:
        """Register a new, immutable generation in status ``candidate``.

        Blobs are stored first (atomically), then all rows are written in ONE transaction, so a crash at any
        point leaves either nothing or a complete generation (at worst an orphan blob fsck can remove).

        Args:
            name: unique name, e.g. ``unified-v2``.
            family: default: the name without its ``-vN`` suffix.
            artifacts: files (named by their file name) or ``(artifact_name, path)`` pairs.
            parents: ``(parent_name, kind)`` pairs, or ``NAME[:KIND]`` strings (KIND defaults to ``fine-tuned-from``).
            datasets: :class:`DatasetRef` or manifest paths (name, sha256 and row count are taken from the file).
            embedding_spec: an :class:`embsdk.spec.EmbeddingSpec` or its dict (dim, bits, binarization, threshold,
                bit_order, float_dtype, code_bytes), checked by ``EmbeddingSpec.from_dict``.
            input_spec: ``embsdk.preprocess.InputSpec.to_dict()`` (or the InputSpec itself).
            training_config: the trainer's config (JSON).
            code_version: default: git commit of the working directory, else the embsdk version.
            description: free text.
            metrics: ``{"task/dataset/metric/variant": value}``.

        Raises:
            DuplicateGeneration: the name is taken (also when another process wins a race for it).
            GenerationNotFound: a parent does not exist.
            InvalidRegistryInput, UnsafePath, ArtifactSourceNotFound: bad input (nothing is written).
        """
        check_name(name)
        family = check_name(family or derive_family(name), "family")
        edges = [parse_parent_spec(p) if isinstance(p, str) else (p[0], check_kind(p[1])) for p in parents]
        spec = check_embedding_spec(embedding_spec)
        input_dict = _jsonable_or_fail(input_spec, "input_spec")
        config = _jsonable_or_fail(training_config, "training_config")
        metric_values = check_metrics(metrics)
        files = _normalize_artifacts(artifacts)
        refs = [d if isinstance(d, DatasetRef) else dataset_from_path(Path(d)) for d in datasets]
        code = code_version or default_code_version()
        for _, path, _ in files:
            if not path.exists() and not path.is_symlink():
                raise ArtifactSourceNotFound(str(path))

        if files:  # fail fast, before copying any bytes (the write transaction checks again)
            with self._read(f"register {name}") as session:
                self._check_new_name(session, name)
                for parent, _ in edges:
                    self._gen_id(session, parent)

        blobs: list[tuple[str, str, StoredBlob]] = [(n, role, self.store.put(p)) for n, p, role in files]
        crash_point("registry.after_blobs_written")

        try:
            with self._write(f"register {name}") as session:
                self._check_new_name(session, name)
                for _, _, blob in blobs:  # by construction no row may point at a missing blob
                    if not self.store.exists(blob.sha256):
                        raise IntegrityError(
                            f"Blob {blob.sha256} vanished before commit (concurrent fsck?); retry."
                        )
                now = utcnow()
                gen = Generation(
                    name=name,
                    family=family,
                    status=Status.CANDIDATE.value,
                    created_at=now,
                    created_by=self.user,
                    description=description,
                    code_version=code,
                    training_config=config,
                    embedding_spec=spec,
                    input_spec=input_dict,
                )
                session.add(gen)
                session.flush()
                for art_name, role, blob in blobs:
                    session.add(
                        Artifact(
                            generation_id=gen.id,
                            name=art_name,
                            role=role,
                            sha256=blob.sha256,
                            size=blob.size,
                            at_creation=True,
                            created_at=now,
                            created_by=self.user,
                        )
                    )
                for parent, kind in dict.fromkeys(edges):
                    pid = self._gen_id(session, parent)
                    session.add(
                        LineageEdge(
                            child_id=gen.id, parent_id=pid, kind=kind, created_at=now, created_by=self.user
                        )
                    )
                for ref in dict.fromkeys(refs):
                    session.add(
                        GenerationDataset(
                            generation_id=gen.id, dataset_id=self._dataset_id(session, ref), role=ref.role
                        )
                    )
                for key, value in metric_values.items():
                    session.add(
                        Metric(
                            generation_id=gen.id, key=key, value=value, recorded_at=now, recorded_by=self.user
                        )
                    )
                session.add(
                    StatusEvent(
                        generation_id=gen.id,
                        from_status=None,
                        to_status=gen.status,
                        at=now,
                        who=self.user,
                        reason="registered",
                    )
                )
                session.flush()
                crash_point("registry.before_commit")
            # Everything in the new generation is known here; build the view without reading it back.
            return GenerationInfo(
                name=name,
                family=family,
                status=Status.CANDIDATE.value,
                created_at=now,
                created_by=self.user,
                description=description,
                code_version=code,
                training_config=config,
                embedding_spec=spec,
                input_spec=input_dict,
                parents=tuple(
                    sorted(
                        (LineageEdgeInfo(name, p, k) for p, k in dict.fromkeys(edges)),
                        key=lambda e: (e.parent, e.kind),
                    )
                ),
                artifacts=tuple(
                    ArtifactInfo(n, role, b.sha256, b.size, True, now, self.user) for n, role, b in blobs
                ),
                datasets=tuple(sorted(dict.fromkeys(refs), key=lambda d: (d.role, d.name))),
                metrics=dict(sorted(metric_values.items())),
            )
        except RegistryError as exc:
            # A translated database error: on PostgreSQL the loser of a race for the name gets a unique
            # violation when the winner commits. Report it as the duplicate it is.
            if type(exc) is RegistryError and self._name_taken(name):
                raise DuplicateGeneration(name) from None
            raise

    def _name_taken(self, name: str) -> bool:
        with self._read(f"check {name}") as session:
            return session.connection().execute(_Q.gen_id_by_name, {"name": name}).first() is not None

    @staticmethod
    def _check_new_name(session: Session, name: str) -> None:
        conn = session.connection()
        if conn.execute(_Q.gen_id_by_name, {"name": name}).first():
            raise DuplicateGeneration(name)
        if conn.execute(_Q.alias_by_name, {"name": name}).first():
            raise InvalidRegistryInput(
                f"{name!r} is already an alias; a generation cannot have the same name."
            )

    @staticmethod
    def _dataset_id(session: Session, ref: DatasetRef) -> int:
        """Find or create the dataset row (a savepoint absorbs a concurrent insert of the same one)."""
        stmt = sa.select(Dataset.id).where(Dataset.name == ref.name, Dataset.sha256 == ref.sha256)
        found = session.execute(stmt).scalar_one_or_none()
        if found is not None:
            return found
        try:
            with session.begin_nested():
                row = Dataset(name=ref.name, sha256=ref.sha256, rows=ref.rows)
                session.add(row)
            return row.id
        except sa.exc.IntegrityError:
            return session.execute(stmt).scalar_one()

    def get(self, name: str) -> GenerationInfo:
        """The generation called *name* (not an alias; see :meth:`resolve`).

        Raises:
            GenerationNotFound: no such generation.
        """
        with self._read(f"read {name}") as session:
            row = session.connection().execute(_Q.gen_by_name, {"name": name}).first()
            if row is None:
                raise GenerationNotFound(name)
            return self._info(session, row)

    def resolve(self, ref: str, *, at: datetime | None = None) -> GenerationInfo:
        """A generation name or an alias → the generation; ``at`` answers what an alias pointed to then.

        Raises:
            GenerationNotFound: neither a generation nor an alias (or the generation did not exist at ``at``).
            AliasNotFound: the alias exists but did not point anywhere at ``at``.
        """
        with self._read(f"resolve {ref}") as session:
            gen, alias = self._resolve_row(session, ref, at)
            return self._info(session, gen, resolved_from=alias)

    def list(
        self, status: str | None = None, *, family: str | None = None
    ) -> builtins.list[GenerationSummary]:
        """Generations, oldest first, optionally only those in *status* and/or *family*."""
        if status is not None and status not in {s.value for s in Status}:
            raise InvalidRegistryInput(
                f"Unknown status {status!r}; use one of: {', '.join(s.value for s in Status)}."
            )
        stmt = sa.select(Generation).order_by(Generation.created_at, Generation.id)
        if status:
            stmt = stmt.where(Generation.status == status)
        if family:
            stmt = stmt.where(Generation.family == family)
        with self._read("list generations") as session:
            return [
                GenerationSummary(g.name, g.family, g.status, g.created_at, g.created_by, g.description)
                for g in session.scalars(stmt)
            ]

    def add_artifact(
        self, name: str, path: Path | str, *, artifact_name: str | None = None, role: str = "attachment"
    ) -> ArtifactInfo:
        """Attach a file to an existing generation (store shard, faiss index, eval report, TensorRT plan…).

        Append-only: an attachment with an existing attachment name supersedes it (the old row stays as
        history). Artifacts registered with the generation can never be replaced.

        Raises:
            ImmutableGeneration: the name belongs to an artifact registered at creation, the role is
                ``model``, or the generation is retired.
            GenerationNotFound, UnsafePath, ArtifactSourceNotFound.
        """
        path = Path(path)
        artifact_name = validate_artifact_name(artifact_name or path.name)
        if role == "model":
            raise ImmutableGeneration(name, "its model artifacts (role 'model') are fixed at registration")
        with self._read(f"attach to {name}") as session:
            self._check_attachable(session, name, artifact_name)
        blob = self.store.put(path)
        with self._write(f"attach to {name}") as session:
            gen = self._check_attachable(session, name, artifact_name)
            current = session.scalars(
                sa.select(Artifact)
                .where(Artifact.generation_id == gen.id, Artifact.name == artifact_name)
                .order_by(Artifact.id.desc())
                .limit(1)
            ).one_or_none()
            if current is not None and current.sha256 == blob.sha256 and current.role == role:
                row = current  # the same bytes again: nothing to record
            else:
                if not self.store.exists(blob.sha256):
                    raise IntegrityError(
                        f"Blob {blob.sha256} vanished before commit (concurrent fsck?); retry."
                    )
                row = Artifact(
                    generation_id=gen.id,
                    name=artifact_name,
                    role=role,
                    sha256=blob.sha256,
                    size=blob.size,
                    at_creation=False,
                    created_at=utcnow(),
                    created_by=self.user,
                )
                session.add(row)
                session.flush()
            return ArtifactInfo(
                row.name,
                row.role,
                row.sha256,
                row.size,
                row.at_creation,
                row.created_at,
                row.created_by,
                True,
            )

    def _check_attachable(self, session: Session, name: str, artifact_name: str) -> Generation:
        gen = self._gen(session, name, for_update=True)
        if gen.status == Status.RETIRED:
            raise ImmutableGeneration(
                name, detail=f"Generation {name!r} is retired: it takes no new attachments."
            )
        fixed = session.execute(
            sa.select(Artifact.id).where(
                Artifact.generation_id == gen.id,
                Artifact.name == artifact_name,
                Artifact.at_creation.is_(True),
            )
        ).first()
        if fixed:
            raise ImmutableGeneration(name, f"artifact {artifact_name!r} was registered with it")
        return gen

    def artifact_path(self, name: str, artifact_name: str, *, verify: bool = False) -> Path:
        """Path of the current artifact *artifact_name* of generation (or alias) *name*, checked to exist.

        Raises:
            GenerationNotFound: no such generation or alias.
            InvalidRegistryInput: the generation has no artifact by that name.
            ArtifactMissing: the blob is gone (run fsck). ArtifactCorrupt: ``verify`` and the hash differs.
        """
        info = self.resolve(name)
        try:
            art = info.artifact(artifact_name)
        except KeyError:
            have = ", ".join(sorted({a.name for a in info.artifacts})) or "none"
            raise InvalidRegistryInput(
                f"Generation {info.name!r} has no artifact {artifact_name!r} (it has: {have})."
            ) from None
        return self.store.open_path(art.sha256, verify=verify)

    def add_metrics(self, name: str, metrics: Mapping[str, float]) -> GenerationInfo:
        """Record (or update) evaluation metrics; allowed at any time, since they describe, not define."""
        values = check_metrics(metrics)
        with self._write(f"add metrics to {name}") as session:
            gen = self._gen(session, name)
            existing = {
                m.key: m for m in session.scalars(sa.select(Metric).where(Metric.generation_id == gen.id))
            }
            now = utcnow()
            for key, value in values.items():
                if key in existing:
                    existing[key].value, existing[key].recorded_at, existing[key].recorded_by = (
                        value,
                        now,
                        self.user,
                    )
                else:
                    session.add(
                        Metric(
                            generation_id=gen.id, key=key, value=value, recorded_at=now, recorded_by=self.user
                        )
                    )
            session.flush()
            return self._info(session, gen)

    def compare(self, a: str, b: str) -> Comparison:
        """Metrics side by side (``delta = b - a``) and the spec fields that differ."""
        ga, gb = self.resolve(a), self.resolve(b)
        keys = sorted(set(ga.metrics) | set(gb.metrics))
        rows = tuple(
            (
                k,
                ga.metrics.get(k),
                gb.metrics.get(k),
                None if k not in ga.metrics or k not in gb.metrics else gb.metrics[k] - ga.metrics[k],
            )
            for k in keys
        )
        return Comparison(
            ga.name,
            gb.name,
            rows,
            _diff(ga.embedding_spec, gb.embedding_spec),
            _diff(ga.input_spec, gb.input_spec),
        )


def _diff(x: Mapping[str, Any] | None, y: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    x, y = x or {}, y or {}
    return {k: (x.get(k), y.get(k)) for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}
