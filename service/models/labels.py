"""Assignments (an item leased to an annotator) and the human labels given on them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, JSONType, UTCDateTime, utcnow
from service.models.projects import FeedbackKind, feedback_kind_type


class AssignmentStatus(enum.StrEnum):
    """Where an assignment is: leased until it expires, then submitted or skipped."""

    leased = "leased"
    submitted = "submitted"
    skipped = "skipped"


class LabelOrigin(enum.StrEnum):
    """Where a human label came from: an annotator's assignment or an imported dataset."""

    annotation = "annotation"
    imported = "import"


class Assignment(Base):
    """An item leased to one annotator; an annotator gets an item at most once."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_assignments_annotator_project_status", "annotator_id", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[AssignmentStatus] = mapped_column(
        Enum(
            AssignmentStatus,
            name="assignment_status",
            native_enum=False,
            create_constraint=True,
            length=16,
        ),
        default=AssignmentStatus.leased,
    )
    leased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class HumanLabel(Base):
    """One human judgement of an item; never updated, a new judgement is a new row."""

    __tablename__ = "human_labels"
    __table_args__ = (
        UniqueConstraint("annotator_id", "idempotency_key"),
        Index("ix_human_labels_item", "item_id"),
        Index("ix_human_labels_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True
    )
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[FeedbackKind] = mapped_column(feedback_kind_type)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    rationale: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[LabelOrigin] = mapped_column(
        Enum(
            LabelOrigin, name="label_origin", native_enum=False, create_constraint=True, length=16
        ),
        default=LabelOrigin.annotation,
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
