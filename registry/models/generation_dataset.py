"""``generation_datasets``: which datasets a generation was trained (or evaluated) on."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["GenerationDataset"]


class GenerationDataset(Base):
    __tablename__ = "generation_datasets"

    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
