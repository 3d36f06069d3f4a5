"""Projects: one labeling effort and its settings."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class FeedbackKind(enum.StrEnum):
    """The shape of feedback a project collects."""

    pairwise = "pairwise"
    listwise = "listwise"
    binary = "binary"


feedback_kind_type = Enum(
    FeedbackKind, name="feedback_kind", native_enum=False, create_constraint=True, length=16
)


class Project(Base):
    """A labeling effort: its feedback kind, overlap, lease and instructions."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("lease_seconds >= 5", name="lease_min"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[FeedbackKind] = mapped_column(feedback_kind_type)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    lease_seconds: Mapped[int] = mapped_column(Integer)
    instructions: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
