"""``consumers``: downstream teams and the generation name or alias they read (added by revision 0002)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["Consumer"]


class Consumer(Base):
    __tablename__ = "consumers"
    __table_args__ = (UniqueConstraint("team", "ref", name="uq_consumers_team_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team: Mapped[str] = mapped_column(String(128))
    ref: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
