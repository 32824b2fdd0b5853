"""``status_events``: every lifecycle transition of every generation (who, when, why), kept forever."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["StatusEvent"]


class StatusEvent(Base):
    __tablename__ = "status_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    who: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
