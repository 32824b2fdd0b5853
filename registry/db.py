"""Engines for the registry: SQLite (WAL, busy timeout, immediate write transactions) or any SQLAlchemy URL.

Every database error is translated at this boundary into a typed :class:`~embsdk.errors.RegistryError`
whose message has the URL password redacted; SQLAlchemy and driver exceptions never leave the service.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from embsdk.config import redact_url
from embsdk.errors import ConfigError, RegistryError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "RegistryNotFound",
    "create_registry_engine",
    "parse_registry_url",
    "read_session",
    "translate_db_errors",
    "write_session",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class RegistryNotFound(RegistryError, FileNotFoundError):
    """A reader opened a registry that does not exist (nothing was created)."""

    def __init__(self, path: Path, url: str) -> None:
        super().__init__(
            f"No registry at {path} (registry URL {redact_url(url)}): check EMB_REGISTRY_URL / --registry-url. "
            "Reads never create a registry; `emb registry migrate` or `emb publish` creates one."
        )
        self.path = path


def _sqlite_path(url: sa.URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


# ``scheme://user:PASSWORD@host...``: the password runs to the LAST ``@`` before the query string.
_RAW_CREDENTIALS = re.compile(
    r"^(?P<head>[\w+]+://[^:/@?]*:)(?P<password>[^?]*@[^?]*)@(?P<rest>[^@?]*(?:\?.*)?)$"
)


def parse_registry_url(url: str) -> sa.URL:
    """Parse *url*; a raw ``@`` in the password belongs to the password (up to the LAST ``@``).

    SQLAlchemy ends the password at the FIRST ``@``: of ``user:se@cret@host`` it would take ``cret@host`` as the
    host, connect nowhere and print part of the password in the driver's error. A host never holds an ``@``.
    """
    m = _RAW_CREDENTIALS.match(url)
    if m:
        password = urllib.parse.quote(urllib.parse.unquote(m["password"]), safe="")
        url = f"{m['head']}{password}@{m['rest']}"
    return make_url(url)


def create_registry_engine(url: str, *, create: bool = True) -> Engine:
    """Create the engine for *url*; SQLite gets WAL mode, a busy timeout and foreign keys.

    Args:
        url: the SQLAlchemy URL.
        create: whether a missing SQLite database (and its folder) may be created. ``False`` (readers):
            a missing database file raises :class:`RegistryNotFound` and nothing is created.

    Raises:
        ConfigError: the URL cannot be parsed or names an unknown driver.
        RegistryNotFound: ``create=False`` and the SQLite database file does not exist.
    """
    try:
        parsed = parse_registry_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.ArgumentError and friends
        raise ConfigError(f"Invalid registry URL {redact_url(url)!r}: {redact_url(str(exc))}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            path = _sqlite_path(parsed)
            if path is not None and not create and not path.is_file():
                raise RegistryNotFound(path.expanduser().absolute(), url)
            if path is not None and create:
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
            return engine
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ImportError as exc:
        raise ConfigError(
            f"No database driver for {redact_url(url)!r} ({exc}). For PostgreSQL: pip install 'embsdk[postgres]' "
            "and use a postgresql+psycopg:// URL."
        ) from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"Invalid registry URL {redact_url(url)!r}: {redact_url(str(exc))}") from None


def _configure_sqlite(engine: Engine) -> None:
    """WAL (readers never block the writer), busy timeout, FKs, and explicit BEGIN [IMMEDIATE]."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's implicit BEGIN is deferred)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A write transaction takes the write lock up front, so two writers queue on the busy timeout
        # instead of failing with "database is locked" when a read lock cannot be upgraded.
        immediate = conn.get_execution_options().get("registry_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def translate_db_errors(url: str, action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as :class:`RegistryError` with the password redacted."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise RegistryError(
            f"Cannot {action}: the registry database at {redact_url(url)} failed: {_short(exc)}. "
            "Check EMB_REGISTRY_URL and that the database is reachable."
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise RegistryError(f"Cannot {action}: database error: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact_url(text[0] if text else type(exc).__name__)


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite; a PostgreSQL transaction otherwise)."""
    with (
        Session(engine.execution_options(registry_write=True), expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only transaction (a consistent snapshot; never blocks a writer under WAL)."""
    with Session(engine) as session:
        yield session  # closing the session rolls the read transaction back
