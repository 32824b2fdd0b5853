"""Bearer tokens of the HTTP service (hashes only) and per (team, generation, day) usage counters.

Revision ID: 0003_api_tokens_usage
Revises: 0002_consumers_alias_protection
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_api_tokens_usage"
down_revision: str | None = "0002_consumers_alias_protection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )
    op.create_index("ix_api_tokens_team", "api_tokens", ["team"])
    op.create_table(
        "usage_counters",
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("generation", sa.String(128), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team", "generation", "day", name="pk_usage_counters"),
    )


def downgrade() -> None:
    op.drop_table("usage_counters")
    op.drop_index("ix_api_tokens_team", table_name="api_tokens")
    op.drop_table("api_tokens")
