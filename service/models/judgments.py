"""AI judgments: one row per pair and order the judge saw, and one AI label per item and job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, JSONType, UTCDateTime, utcnow
from service.models.projects import FeedbackKind, feedback_kind_type


class AIJudgment(Base):
    """The judge's verdict on one ordering of a pair (or on one response, for binary items).

    `first_position`/`second_position` are the item positions shown first and second
    (second_position is -1 for a binary item); `p_first` is the probability, normalised over
    the two verdict tokens, that the response shown first wins (or "Yes", for binary).
    """

    __tablename__ = "ai_judgments"
    __table_args__ = (
        UniqueConstraint("job_id", "item_id", "first_position", "second_position"),
        Index("ix_ai_judgments_item", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    first_position: Mapped[int] = mapped_column(Integer)
    second_position: Mapped[int] = mapped_column(Integer)
    p_first: Mapped[float] = mapped_column(Float)
    logprobs: Mapped[dict[str, float]] = mapped_column(JSONType)
    rationale: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AILabel(Base):
    """A judge's label of one item in one job, in the same value shape as a human label.

    `value` is {"choice": "a"|"b"|"tie"}, {"ranking": [...]} or {"rating": "up"|"down"};
    `scores` holds the numbers behind it (debiased P(A>B), Bradley-Terry scores, P(Yes)).
    """

    __tablename__ = "ai_labels"
    __table_args__ = (
        UniqueConstraint("job_id", "item_id"),
        Index("ix_ai_labels_project_item", "project_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    kind: Mapped[FeedbackKind] = mapped_column(feedback_kind_type)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    scores: Mapped[dict[str, Any]] = mapped_column(JSONType)
    confidence: Mapped[float | None] = mapped_column(Float)  # None: nobody measured it
    position_consistent: Mapped[bool | None] = mapped_column(Boolean)
    judge_model: Mapped[str] = mapped_column(String(500))
    judge_backend: Mapped[str] = mapped_column(String(50))
    template: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
