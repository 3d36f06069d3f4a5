"""Prompts, responses and the items (pair, list or single response) that are judged."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, JSONType, UTCDateTime, utcnow
from service.models.projects import FeedbackKind, feedback_kind_type


class Prompt(Base):
    """A prompt (or dialogue prefix) within a project; identical texts are stored once."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("project_id", "text_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Response(Base):
    """A response to a prompt: written by a human, a model, or revised from another response."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200), default="unknown")
    revision_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("responses.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Item(Base):
    """What is judged: a pair, a list of K responses, or one response, in a fixed order."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_project_open", "project_id", "is_complete", "id"),
        UniqueConstraint("project_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[FeedbackKind] = mapped_column(feedback_kind_type)
    external_id: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), index=True
    )
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    is_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    prompt: Mapped[Prompt] = relationship(lazy="raise")
    slots: Mapped[list[ItemResponse]] = relationship(
        order_by="ItemResponse.position", lazy="raise", cascade="all, delete-orphan"
    )


class ItemResponse(Base):
    """A response's position within an item (position 0 is shown as A)."""

    __tablename__ = "item_responses"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(
        ForeignKey("responses.id", ondelete="CASCADE"), index=True
    )

    response: Mapped[Response] = relationship(lazy="raise")
