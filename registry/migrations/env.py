"""Alembic environment: migrates the connection handed in by ``registry.migrate`` (or ``-x url=...``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from registry.db import create_registry_engine
from registry.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite has no real ALTER TABLE
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        from embsdk.config import get_settings

        url = get_settings().registry_url
    engine = create_registry_engine(url)  # the same engine setup the service uses (WAL, busy timeout, FKs)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run: emb registry migrate")
run_migrations_online()
