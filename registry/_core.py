"""Shared machinery of the :class:`~registry.Registry` service: engine, schema check, sessions, lookups.

The service is split by concern into mixins (``_generations``, ``_lineage``, ``_aliases``,
``_lifecycle_ops``, ``_maintenance``); they all build on :class:`RegistryCore`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

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

logger = logging.getLogger(__name__)


class RegistryCore:
    """Connection, configuration and the lookups every operation shares."""

    def __init__(
        self,
        url: str | None = None,
        *,
        artifact_dir: Path | None = None,
        user: str | None = None,
        auto_migrate: bool | None = None,
        create: bool = True,
    ) -> None:
        """Open (and on first use create) a registry.

        Args:
            url: SQLAlchemy URL; default ``EMB_REGISTRY_URL`` or ``sqlite:///$EMB_HOME/registry.db``.
            artifact_dir: the artifact store folder; default ``EMB_ARTIFACTS`` or ``$EMB_HOME/artifacts``.
            user: who acts (recorded on events); default ``EMB_USER`` or the login name.
            auto_migrate: ``None`` (default): migrate SQLite to head and create the schema in an empty
                database; an outdated non-SQLite database raises :class:`SchemaOutdated`. ``True``: always
                migrate to head. ``False``: do not touch the schema (for ``migrate()`` itself).
            create: ``True`` (writers: register, publish, migrate): create a missing SQLite database.
                ``False`` (readers: the SDK's get/search/embed): a missing one raises
                :class:`~registry.db.RegistryNotFound` naming the path, and nothing is created.

        Raises:
            ConfigError: the URL is invalid or its driver is not installed.
            SchemaOutdated: the database needs ``emb registry migrate``.
            RegistryNotFound: ``create=False`` and the SQLite database does not exist.
            RegistryError: the database cannot be reached (message has the password redacted).
        """
        settings = get_settings()
        self.url = url or settings.registry_url
        self.artifact_dir = Path(artifact_dir or settings.artifact_dir).expanduser().absolute()
        self.user = user or settings.user
        self.store = ArtifactStore(self.artifact_dir)
        self._engine = create_registry_engine(self.url, create=create)
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

    def __enter__(self) -> Self:
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
            _check_known(current)
            if force or current is None or self.dialect == "sqlite":
                _migrate.upgrade(self._engine)
                return
            raise SchemaOutdated(current, head)

    def migrate(self) -> tuple[str | None, str]:
        """Upgrade the schema to the newest revision (``emb registry migrate``); returns ``(before, after)``.

        Raises:
            RegistryError: the database is unreachable, or at a revision newer than this embsdk knows.
        """
        with translate_db_errors(self.url, "migrate the registry"):
            _check_known(_migrate.current_revision(self._engine))
            before, after = _migrate.upgrade(self._engine)
        logger.info("registry %s: migrated %s -> %s", self.url_redacted, before or "empty", after)
        return before, after or _migrate.head_revision()

    # ------------------------------------------------------------------ sessions

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Session]:
        with translate_db_errors(self.url, action), write_session(self._engine) as session:
            yield session
        logger.info("registry %s: %s (by %s)", self.url_redacted, action, self.user)

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
    def _gen_id(session: Session, name: str) -> int:
        """Id of generation *name* (a cached Core query; no ORM object).

        Raises:
            GenerationNotFound: no such generation.
        """
        found = session.connection().execute(_Q.gen_id_by_name, {"name": name}).scalar()
        if found is None:
            raise GenerationNotFound(name)
        return int(found)

    @staticmethod
    def _resolve_row(session: Session, ref: str, at: datetime | None = None) -> tuple[Any, str | None]:
        """A generation name or alias → (generations row, alias used or None); *at* looks back in time."""
        conn = session.connection()
        gen = conn.execute(_Q.gen_by_name, {"name": ref}).first()
        if gen is not None:
            if at is not None and gen.created_at > _aware(at):
                raise GenerationNotFound(ref, hint=f"It was registered after {at.isoformat()}.")
            return gen, None
        if at is None:
            gen = conn.execute(_Q.gen_by_alias, {"alias": ref}).first()
            if gen is None:
                raise GenerationNotFound(ref)
            return gen, ref
        gen = conn.execute(_Q.gen_by_alias_at, {"alias": ref, "at": _aware(at)}).first()
        if gen is None:
            if conn.execute(_Q.alias_ever, {"alias": ref}).first() is None:
                raise GenerationNotFound(ref)
            raise AliasNotFound(ref, at=_aware(at).isoformat())
        return gen, ref

    @staticmethod
    def _info(session: Session, gen: Any, resolved_from: str | None = None) -> GenerationInfo:
        """Assemble the full, detached view of one generation (*gen*: ORM object or row; 3 indexed queries)."""
        conn, p = session.connection(), {"id": gen.id}
        edges = conn.execute(_Q.edges, p).all()
        rows = conn.execute(_Q.artifacts, p).all()
        newest = {a.name: a.id for a in rows}
        artifacts = tuple(
            ArtifactInfo(
                name=a.name,
                role=a.role,
                sha256=a.sha256,
                size=a.size,
                at_creation=bool(a.at_creation),
                created_at=a.created_at,
                created_by=a.created_by,
                current=newest[a.name] == a.id,
            )
            for a in rows
        )
        datasets: list[DatasetRef] = []
        aliases: list[str] = []
        metrics: dict[str, float] = {}
        for kind, text_a, text_b, text_c, number_i, number_f in conn.execute(_Q.extras, p):
            if kind == "d":
                datasets.append(DatasetRef(text_a, text_b, number_i, text_c))
            elif kind == "a":
                aliases.append(text_a)
            else:
                metrics[text_a] = number_f
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
            parents=tuple(LineageEdgeInfo(gen.name, other, k) for up, other, k in edges if up),
            children=tuple(LineageEdgeInfo(other, gen.name, k) for up, other, k in edges if not up),
            artifacts=artifacts,
            datasets=tuple(sorted(datasets, key=lambda d: (d.role, d.name))),
            aliases=tuple(sorted(aliases)),
            metrics=dict(sorted(metrics.items())),
            resolved_from=resolved_from,
        )


class _Queries:
    """Core statements built once (statement construction costs more than running them on SQLite)."""

    def __init__(self) -> None:
        g, e, a = Generation.__table__, LineageEdge.__table__, Artifact.__table__
        d, gd, al = Dataset.__table__, GenerationDataset.__table__, Alias.__table__
        ae, m = AliasEvent.__table__, Metric.__table__
        bid = sa.bindparam("id", type_=sa.Integer)
        self.gen_by_name = sa.select(g).where(g.c.name == sa.bindparam("name"))
        self.gen_id_by_name = sa.select(g.c.id).where(g.c.name == sa.bindparam("name"))
        self.alias_by_name = sa.select(al.c.name).where(al.c.name == sa.bindparam("name"))
        self.gen_by_alias = (
            sa.select(g).join(al, al.c.generation_id == g.c.id).where(al.c.name == sa.bindparam("alias"))
        )
        latest = (
            sa.select(ae.c.generation_id)
            .where(
                ae.c.alias == sa.bindparam("alias"), ae.c.at <= sa.bindparam("at", type_=AliasEvent.at.type)
            )
            .order_by(ae.c.at.desc(), ae.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        self.gen_by_alias_at = sa.select(g).where(g.c.id == latest)
        self.alias_ever = sa.select(ae.c.id).where(ae.c.alias == sa.bindparam("alias")).limit(1)
        parent, child = g.alias("p"), g.alias("c")
        self.edges = sa.union_all(
            sa.select(sa.literal(True).label("up"), parent.c.name, e.c.kind)
            .join(parent, parent.c.id == e.c.parent_id)
            .where(e.c.child_id == bid),
            sa.select(sa.literal(False).label("up"), child.c.name, e.c.kind)
            .join(child, child.c.id == e.c.child_id)
            .where(e.c.parent_id == bid),
        ).order_by(sa.text("name"), sa.text("kind"))
        self.artifacts = sa.select(a).where(a.c.generation_id == bid).order_by(a.c.id)
        # datasets, aliases and metrics in one round trip: (kind, text_a, text_b, text_c, number_i, number_f)
        no_text, no_int, no_float = (
            sa.cast(sa.null(), sa.String),
            sa.cast(sa.null(), sa.BigInteger),
            sa.cast(sa.null(), sa.Float),
        )
        self.extras = sa.union_all(
            sa.select(sa.literal("d"), d.c.name, d.c.sha256, gd.c.role, d.c.rows, no_float)
            .join(gd, gd.c.dataset_id == d.c.id)
            .where(gd.c.generation_id == bid),
            sa.select(sa.literal("a"), al.c.name, no_text, no_text, no_int, no_float).where(
                al.c.generation_id == bid
            ),
            sa.select(sa.literal("m"), m.c.key, no_text, no_text, no_int, m.c.value).where(
                m.c.generation_id == bid
            ),
        )


_Q = _Queries()


def _check_known(revision: str | None) -> None:
    if revision is not None and revision not in _migrate.known_revisions():
        raise RegistryError(
            f"The registry schema is at revision {revision!r}, newer than this embsdk knows; upgrade embsdk "
            f"(its newest is {_migrate.head_revision()!r})."
        )


def _aware(at: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
