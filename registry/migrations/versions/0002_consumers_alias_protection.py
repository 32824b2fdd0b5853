"""Consumers (downstream teams pinning a generation or alias) and protected aliases.

Revision ID: 0002_consumers_alias_protection
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_consumers_alias_protection"
down_revision: str | None = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("ref", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consumers"),
        sa.UniqueConstraint("team", "ref", name="uq_consumers_team_ref"),
    )
    op.create_index("ix_consumers_ref", "consumers", ["ref"])
    # existing aliases stay unprotected; batch mode rebuilds the table on SQLite
    with op.batch_alter_table("aliases") as batch:
        batch.add_column(sa.Column("protected", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("protected")
    op.drop_index("ix_consumers_ref", table_name="consumers")
    op.drop_table("consumers")
