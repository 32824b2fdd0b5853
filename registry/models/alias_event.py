"""``alias_events``: every move of every alias, kept forever (answers "what did it point to at time T")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["AliasEvent"]


class AliasEvent(Base):
    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_alias_at", "alias", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(128))
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"))
    previous_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    at: Mapped[datetime]
    who: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
