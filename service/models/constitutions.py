"""Constitutions (named, versioned lists of principles) and the critique -> revision chains
a constitution job writes: one chain per revised response, one step per round."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, JSONType, UTCDateTime, utcnow


class Constitution(Base):
    """One version of a named constitution; a version's principles never change."""

    __tablename__ = "constitutions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    principles: Mapped[list[Principle]] = relationship(
        order_by="Principle.position", lazy="raise", cascade="all, delete-orphan"
    )


class Principle(Base):
    """A principle of one constitution version: what to critique, and how to revise."""

    __tablename__ = "principles"
    __table_args__ = (UniqueConstraint("constitution_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    constitution_id: Mapped[int] = mapped_column(ForeignKey("constitutions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    critique_request: Mapped[str] = mapped_column(Text)
    revision_request: Mapped[str] = mapped_column(Text)


class ChainStatus(enum.StrEnum):
    """How a chain ended: a usable revision, none, or a revision the judge did not prefer."""

    revised = "revised"
    unrevised = "unrevised"
    rejected = "rejected"


class StepOutcome(enum.StrEnum):
    """What became of one generation: usable, or why it was not kept."""

    ok = "ok"
    empty = "empty"
    looping = "looping"
    too_long = "too_long"  # hit the step's max_tokens before the model ended its turn
    unchanged = "unchanged"  # a revision identical to the text it revises


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16)


class RevisionChain(Base):
    """The critique -> revision rounds one constitution job ran on one response."""

    __tablename__ = "revision_chains"
    __table_args__ = (
        UniqueConstraint("job_id", "response_id"),
        Index("ix_revision_chains_pair_item_id", "pair_item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    constitution_id: Mapped[int] = mapped_column(ForeignKey("constitutions.id"))
    status: Mapped[ChainStatus] = mapped_column(_enum(ChainStatus, "chain_status"))
    final_response_id: Mapped[int | None] = mapped_column(
        ForeignKey("responses.id", ondelete="SET NULL")
    )
    pair_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"))
    p_confirmed: Mapped[float | None] = mapped_column(Float)  # judge's P(revision > original)
    model: Mapped[str] = mapped_column(String(500))
    backend: Mapped[str] = mapped_column(String(50))
    generation: Mapped[dict[str, Any]] = mapped_column(JSONType)  # settings the steps ran with
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    steps: Mapped[list[RevisionStep]] = relationship(
        order_by="RevisionStep.round", lazy="raise", cascade="all, delete-orphan"
    )


class RevisionStep(Base):
    """One round of a chain: the principle, the critique and the revision, each judged usable
    or not (a revision that is not usable ends the chain and is never a Response)."""

    __tablename__ = "revision_steps"
    __table_args__ = (UniqueConstraint("chain_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("revision_chains.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    principle_id: Mapped[int] = mapped_column(ForeignKey("principles.id"))
    critique: Mapped[str] = mapped_column(Text)
    critique_outcome: Mapped[StepOutcome] = mapped_column(_enum(StepOutcome, "critique_outcome"))
    critique_tokens: Mapped[int] = mapped_column(Integer)
    revision: Mapped[str | None] = mapped_column(Text)
    revision_outcome: Mapped[StepOutcome | None] = mapped_column(
        _enum(StepOutcome, "revision_outcome")
    )
    revision_tokens: Mapped[int] = mapped_column(Integer, default=0)
