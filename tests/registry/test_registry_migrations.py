"""Schema migrations: models == migrated schema; an older registry upgrades in place with its data."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from embsdk.errors import ConsumersAffected, SchemaOutdated
from registry import Registry
from registry.db import create_registry_engine
from registry.migrate import current_revision, head_revision, upgrade
from registry.models import Base

FIRST = "0001_initial"


def test_migrated_schema_matches_models(registry_url: str) -> None:
    engine = create_registry_engine(registry_url)
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diffs == []


def test_fresh_sqlite_registry_is_created_in_wal_mode(emb_home: Path) -> None:
    reg = Registry()
    db = emb_home / "registry.db"
    assert db.exists()
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert current_revision(reg._engine) == head_revision()


def _seed_revision_one(url: str) -> None:
    """Write data the way an embsdk at revision 0001 would have (raw SQL: the old code is gone)."""
    engine = create_registry_engine(url)
    upgrade(engine, FIRST)
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO generations (id, name, family, status, created_at, created_by, description, code_version, "
                "training_config, embedding_spec, input_spec) VALUES "
                "(1, 'unified-v1', 'unified', 'production', :t, 'alice', 'old', 'git:1', NULL, :spec, NULL),"
                "(2, 'unified-v2', 'unified', 'candidate', :t, 'bob', 'newer', 'git:2', NULL, NULL, NULL)"
            ),
            {"t": now, "spec": '{"bits": 256, "dim": 256}'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO lineage_edges (child_id, parent_id, kind, created_at, created_by) "
                "VALUES (2, 1, 'fine-tuned-from', :t, 'bob')"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text("INSERT INTO aliases (name, generation_id, updated_at) VALUES ('production', 1, :t)"),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO alias_events (alias, generation_id, previous_generation_id, at, who, reason) "
                "VALUES ('production', 1, NULL, :t, 'alice', 'launch')"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO metrics (generation_id, key, value, recorded_at, recorded_by) "
                "VALUES (1, 'coarse/test/r@1/binary', 0.5, :t, 'alice')"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO status_events (generation_id, from_status, to_status, at, who, reason) "
                "VALUES (1, NULL, 'candidate', :t, 'alice', 'registered')"
            ),
            {"t": now},
        )
    assert current_revision(engine) == FIRST
    engine.dispose()


def test_older_registry_upgrades_in_place(registry_url: str, artifact_dir: Path) -> None:
    _seed_revision_one(registry_url)
    if registry_url.startswith("postgresql"):
        with pytest.raises(SchemaOutdated, match="emb registry migrate"):
            Registry(registry_url, artifact_dir=artifact_dir)
        reg = Registry(registry_url, artifact_dir=artifact_dir, auto_migrate=False)
        assert reg.migrate() == (FIRST, head_revision())
    else:  # the embedded SQLite registry migrates itself when opened
        reg = Registry(registry_url, artifact_dir=artifact_dir)
    assert current_revision(reg._engine) == head_revision()
    v1 = reg.get("unified-v1")
    assert (v1.status, v1.created_by, v1.embedding_spec, v1.aliases) == (
        "production",
        "alice",
        {"bits": 256, "dim": 256},
        ("production",),
    )
    assert v1.metrics == {"coarse/test/r@1/binary": 0.5}
    assert reg.lineage("unified-v2").ancestors == ("unified-v1",)
    assert [e.reason for e in reg.alias_history("production")] == ["launch"]
    # the features of revision 0002 work on the upgraded data
    reg.set_alias("production", "unified-v1", protect=True)
    reg.add_consumer("search", "production")
    with pytest.raises(ConsumersAffected, match="search"):
        reg.deprecate("unified-v1")
    assert reg.migrate() == (head_revision(), head_revision())  # idempotent


def test_registry_from_a_newer_embsdk_is_refused_clearly(registry_url: str, artifact_dir: Path) -> None:
    from embsdk.errors import RegistryError

    Registry(registry_url, artifact_dir=artifact_dir).close()
    engine = create_registry_engine(registry_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(RegistryError, match="newer than this embsdk"):
        Registry(registry_url, artifact_dir=artifact_dir)
    with pytest.raises(RegistryError, match="newer than this embsdk"):
        Registry(registry_url, artifact_dir=artifact_dir, auto_migrate=False).migrate()


def test_registry_at_0002_upgrades_to_tokens_and_usage(registry_url: str, artifact_dir: Path) -> None:
    """Revision 0003 (API tokens, usage counters) adds its tables to a 0002 registry and keeps its data."""
    from registry._tokens import TokenRejected

    second = "0002_consumers_alias_protection"
    _seed_revision_one(registry_url)
    engine = create_registry_engine(registry_url)
    upgrade(engine, second)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO consumers (team, ref, created_at, created_by) "
                "VALUES ('search', 'production', '2026-01-02 00:00:00', 'alice')"
            )
        )
    assert current_revision(engine) == second
    assert "api_tokens" not in sa.inspect(engine).get_table_names()
    engine.dispose()

    reg = Registry(registry_url, artifact_dir=artifact_dir, auto_migrate=False)
    assert reg.migrate() == (second, head_revision())
    assert {"api_tokens", "usage_counters"} <= set(sa.inspect(reg._engine).get_table_names())
    assert [(c.team, c.ref, c.generation) for c in reg.consumers()] == [
        ("search", "production", "unified-v1")
    ]
    assert not reg.has_active_tokens()
    issued = reg.issue_token("search", "read")
    assert reg.verify_token(issued.token).team == "search" and reg.has_active_tokens()
    with pytest.raises(TokenRejected):
        reg.verify_token(issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"))
    reg.record_usage({("search", "unified-v1", "2026-12-01"): (4, issued.info.created_at)})
    reg.record_usage({("search", "unified-v1", "2026-12-01"): (1, issued.info.created_at)})
    assert [(u.team, u.generation, u.requests) for u in reg.usage()] == [("search", "unified-v1", 5)]
    reg.close()
