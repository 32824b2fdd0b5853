"""``aliases``: the current target of each alias (its history lives in ``alias_events``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["Alias"]


class Alias(Base):
    __tablename__ = "aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), index=True)
    protected: Mapped[bool] = mapped_column(default=False)  # added by revision 0002
    updated_at: Mapped[datetime]
