"""``api_tokens`` and ``usage_counters``: bearer tokens of the HTTP service and its aggregated usage (revision 0003).

A token reads ``emb_<id>_<secret>``: ``id`` is the primary key (one indexed lookup), and only a salted scrypt
hash of ``secret`` is stored. Usage is one row per (team, generation, day), incremented in batches.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["ApiToken", "UsageCounter"]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(128), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UsageCounter(Base):
    __tablename__ = "usage_counters"

    team: Mapped[str] = mapped_column(String(128), primary_key=True)
    generation: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    requests: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[datetime]
