"""Shared machinery of the :class:`~registry.Registry` service: engine, schema check, sessions, lookups.

The service is split by concern into mixins (``_generations``, ``_lineage``, ``_aliases``,
``_lifecycle_ops``, ``_maintenance``); they all build on :class:`RegistryCore`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from embsdk.config import get_settings, redact_url
from embsdk.errors import AliasNotFound, GenerationNotFound, RegistryError, SchemaOutdated
from registry import migrate as _migrate
from registry.artifacts import ArtifactStore
from registry.db import create_registry_engine, read_session, translate_db_errors, write_session
from registry.entities import ArtifactInfo, DatasetRef, GenerationInfo, LineageEdgeInfo
from registry.models import (
    Alias,
    AliasEvent,
    Artifact,
    Dataset,
    Generation,
    GenerationDataset,
    LineageEdge,
    Metric,
)

__all__ = ["RegistryCore"]


class RegistryCore:
    """Connection, configuration and the lookups every operation shares."""

    def __init__(
        self,
        url: str | None = None,
        *,
        artifact_dir: Path | None = None,
        user: str | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        """Open (and on first use create) a registry.

        Args:
            url: SQLAlchemy URL; default ``EMB_REGISTRY_URL`` or ``sqlite:///$EMB_HOME/registry.db``.
            artifact_dir: the artifact store folder; default ``EMB_ARTIFACTS`` or ``$EMB_HOME/artifacts``.
            user: who acts (recorded on events); default ``EMB_USER`` or the login name.
            auto_migrate: ``None`` (default): migrate SQLite to head and create the schema in an empty
                database; an outdated non-SQLite database raises :class:`SchemaOutdated`. ``True``: always
                migrate to head. ``False``: do not touch the schema (for ``migrate()`` itself).

        Raises:
            ConfigError: the URL is invalid or its driver is not installed.
            SchemaOutdated: the database needs ``emb registry migrate``.
            RegistryError: the database cannot be reached (message has the password redacted).
        """
        settings = get_settings()
        self.url = url or settings.registry_url
        self.artifact_dir = Path(artifact_dir or settings.artifact_dir).expanduser().absolute()
        self.user = user or settings.user
        self.store = ArtifactStore(self.artifact_dir)
        self._engine = create_registry_engine(self.url)
        if auto_migrate is not False:
            self._ensure_schema(force=bool(auto_migrate))

    def __repr__(self) -> str:
        return f"Registry(url={redact_url(self.url)!r}, artifact_dir={str(self.artifact_dir)!r})"

    @property
    def url_redacted(self) -> str:
        return redact_url(self.url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> RegistryCore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def _ensure_schema(self, *, force: bool) -> None:
        head = _migrate.head_revision()
        with translate_db_errors(self.url, "open the registry"):
            current = _migrate.current_revision(self._engine)
            if current == head:
                return
            if force or current is None or self.dialect == "sqlite":
                known = {s.revision for s in _migrate.ScriptDirectory.from_config(_migrate.alembic_config()).walk_revisions()}
                if current is not None and current not in known:
                    raise RegistryError(
                        f"The registry schema is at revision {current!r}, newer than this embsdk knows; upgrade embsdk."
                    )
                _migrate.upgrade(self._engine)
                return
            raise SchemaOutdated(current, head)

    def migrate(self) -> tuple[str | None, str]:
        """Upgrade the schema to the newest revision (``emb registry migrate``); returns ``(before, after)``."""
        with translate_db_errors(self.url, "migrate the registry"):
            before, after = _migrate.upgrade(self._engine)
        return before, after or _migrate.head_revision()

    # ------------------------------------------------------------------ sessions

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Session]:
        with translate_db_errors(self.url, action), write_session(self._engine) as session:
            yield session

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Session]:
        with translate_db_errors(self.url, action), read_session(self._engine) as session:
            yield session

    # ------------------------------------------------------------------ lookups

    @staticmethod
    def _gen(session: Session, name: str, *, for_update: bool = False) -> Generation:
        stmt = sa.select(Generation).where(Generation.name == name)
        if for_update:
            stmt = stmt.with_for_update()
        gen = session.scalars(stmt).one_or_none()
        if gen is None:
            raise GenerationNotFound(name)
        return gen

    @staticmethod
    def _resolve_row(session: Session, ref: str, at: datetime | None = None) -> tuple[Generation, str | None]:
        """A generation name or alias → (generation row, alias used or None); *at* looks back in time."""
        gen = session.scalars(sa.select(Generation).where(Generation.name == ref)).one_or_none()
        if gen is not None:
            if at is not None and gen.created_at > _aware(at):
                raise GenerationNotFound(ref, hint=f"It was registered after {at.isoformat()}.")
            return gen, None
        if at is None:
            gen = session.scalars(
                sa.select(Generation).join(Alias, Alias.generation_id == Generation.id).where(Alias.name == ref)
            ).one_or_none()
            if gen is None:
                raise GenerationNotFound(ref)
            return gen, ref
        event = session.execute(
            sa.select(AliasEvent.generation_id)
            .where(AliasEvent.alias == ref, AliasEvent.at <= _aware(at))
            .order_by(AliasEvent.at.desc(), AliasEvent.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if event is None:
            ever = session.execute(sa.select(AliasEvent.id).where(AliasEvent.alias == ref).limit(1)).first()
            if ever is None:
                raise GenerationNotFound(ref)
            raise AliasNotFound(ref, at=_aware(at).isoformat())
        return session.get_one(Generation, event), ref

    @staticmethod
    def _info(session: Session, gen: Generation, resolved_from: str | None = None) -> GenerationInfo:
        """Assemble the full, detached view of one generation (one indexed query per table)."""
        parent, child = sa.orm.aliased(Generation), sa.orm.aliased(Generation)
        parents = session.execute(
            sa.select(parent.name, LineageEdge.kind)
            .join(parent, parent.id == LineageEdge.parent_id)
            .where(LineageEdge.child_id == gen.id)
            .order_by(parent.name, LineageEdge.kind)
        ).all()
        children = session.execute(
            sa.select(child.name, LineageEdge.kind)
            .join(child, child.id == LineageEdge.child_id)
            .where(LineageEdge.parent_id == gen.id)
            .order_by(child.name, LineageEdge.kind)
        ).all()
        rows = session.scalars(sa.select(Artifact).where(Artifact.generation_id == gen.id).order_by(Artifact.id)).all()
        newest = {a.name: a.id for a in rows}
        artifacts = tuple(
            ArtifactInfo(
                name=a.name,
                role=a.role,
                sha256=a.sha256,
                size=a.size,
                at_creation=a.at_creation,
                created_at=a.created_at,
                created_by=a.created_by,
                current=newest[a.name] == a.id,
            )
            for a in rows
        )
        datasets = session.execute(
            sa.select(Dataset.name, Dataset.sha256, Dataset.rows, GenerationDataset.role)
            .join(GenerationDataset, GenerationDataset.dataset_id == Dataset.id)
            .where(GenerationDataset.generation_id == gen.id)
            .order_by(GenerationDataset.role, Dataset.name)
        ).all()
        aliases = session.scalars(sa.select(Alias.name).where(Alias.generation_id == gen.id).order_by(Alias.name)).all()
        metrics = session.execute(
            sa.select(Metric.key, Metric.value).where(Metric.generation_id == gen.id).order_by(Metric.key)
        ).all()
        return GenerationInfo(
            name=gen.name,
            family=gen.family,
            status=gen.status,
            created_at=gen.created_at,
            created_by=gen.created_by,
            description=gen.description,
            code_version=gen.code_version,
            training_config=gen.training_config,
            embedding_spec=gen.embedding_spec,
            input_spec=gen.input_spec,
            parents=tuple(LineageEdgeInfo(gen.name, p, k) for p, k in parents),
            children=tuple(LineageEdgeInfo(c, gen.name, k) for c, k in children),
            artifacts=artifacts,
            datasets=tuple(DatasetRef(n, s, r, role) for n, s, r, role in datasets),
            aliases=tuple(aliases),
            metrics={k: v for k, v in metrics},
            resolved_from=resolved_from,
        )


def _aware(at: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
