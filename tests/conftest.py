"""Shared fixtures: an isolated EMB_HOME per test, and the real PostgreSQL server.

PostgreSQL (127.0.0.1:5432, trust auth, database ``test``) runs on every machine. Tests marked
``postgres`` skip when it is unreachable, except under ``CI=true`` where they fail instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"


@pytest.fixture(autouse=True)
def emb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own EMB_HOME; no test touches ~/.embsdk."""
    home = tmp_path / "emb_home"
    monkeypatch.setenv("EMB_HOME", str(home))
    for var in ("EMB_REGISTRY_URL", "EMB_ARTIFACTS", "EMB_STORE", "EMB_TRITON_REPOSITORY", "EMB_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMB_USER", "tester")
    return home


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip (locally) or fail (under CI=true) when the PostgreSQL server is unreachable."""
    if _pg_reachable():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable, and CI=true requires it")
    pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test; dropped afterwards."""
    require_postgres()
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # libpq 'options' sets the search_path for every connection of this URL
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrizes a test over both registry backends: embedded SQLite and the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")
