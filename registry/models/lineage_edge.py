"""``lineage_edges``: typed edges child → parent between generations (``fine-tuned-from``, ``replaces``, …)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["LineageEdge"]


class LineageEdge(Base):
    __tablename__ = "lineage_edges"

    child_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
