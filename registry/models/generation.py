"""``generations``: one row per embedding generation (immutable once registered, except its status)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base

__all__ = ["Generation"]


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    family: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    code_version: Mapped[str] = mapped_column(String(128))
    training_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    embedding_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    input_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
