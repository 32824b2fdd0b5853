"""``metrics``: named numbers per generation, keyed ``task/dataset/metric/variant``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["Metric"]


class Metric(Base):
    __tablename__ = "metrics"

    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(128))
