"""Initial registry schema.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("family", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_version", sa.String(128), nullable=False),
        sa.Column("training_config", sa.JSON(), nullable=True),
        sa.Column("embedding_spec", sa.JSON(), nullable=True),
        sa.Column("input_spec", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),
        sa.UniqueConstraint("name", name="uq_generations_name"),
    )
    op.create_index("ix_generations_family", "generations", ["family"])
    op.create_index("ix_generations_status", "generations", ["status"])

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("at_creation", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_artifacts_generation_id_generations"
        ),
    )
    op.create_index("ix_artifacts_generation_id", "artifacts", ["generation_id"])
    op.create_index("ix_artifacts_sha256", "artifacts", ["sha256"])

    op.create_table(
        "lineage_edges",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "parent_id", "kind", name="pk_lineage_edges"),
        sa.ForeignKeyConstraint(
            ["child_id"], ["generations.id"], name="fk_lineage_edges_child_id_generations"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["generations.id"], name="fk_lineage_edges_parent_id_generations"
        ),
    )
    op.create_index("ix_lineage_edges_parent_id", "lineage_edges", ["parent_id"])

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", "sha256", name="uq_datasets_name_sha256"),
    )

    op.create_table(
        "generation_datasets",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("generation_id", "dataset_id", "role", name="pk_generation_datasets"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_generation_datasets_generation_id_generations"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_generation_datasets_dataset_id_datasets"
        ),
    )
    op.create_index("ix_generation_datasets_dataset_id", "generation_datasets", ["dataset_id"])

    op.create_table(
        "metrics",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("generation_id", "key", name="pk_metrics"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_metrics_generation_id_generations"
        ),
    )

    op.create_table(
        "aliases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_aliases_generation_id_generations"
        ),
    )
    op.create_index("ix_aliases_generation_id", "aliases", ["generation_id"])

    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("previous_generation_id", sa.Integer(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alias_events"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_alias_events_generation_id_generations"
        ),
        sa.ForeignKeyConstraint(
            ["previous_generation_id"],
            ["generations.id"],
            name="fk_alias_events_previous_generation_id_generations",
        ),
    )
    op.create_index("ix_alias_events_alias_at", "alias_events", ["alias", "at"])

    op.create_table(
        "status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_status_events"),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name="fk_status_events_generation_id_generations"
        ),
    )
    op.create_index("ix_status_events_generation_id", "status_events", ["generation_id"])


def downgrade() -> None:
    for table in (
        "status_events",
        "alias_events",
        "aliases",
        "metrics",
        "generation_datasets",
        "datasets",
        "lineage_edges",
        "artifacts",
        "generations",
    ):
        op.drop_table(table)
