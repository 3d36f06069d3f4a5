"""Jobs (AI labeling, constitution, training) and the work rows workers claim for them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, JSONType, UTCDateTime, utcnow


class JobKind(enum.StrEnum):
    """What a job does; workers of one kind claim only that kind's work."""

    judge = "judge"
    constitution = "constitution"
    train = "train"


class JobStatus(enum.StrEnum):
    """A job's life: queued, running, then succeeded, failed or cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)


class WorkStatus(enum.StrEnum):
    """A work row's life: queued, running under a lease, then done, dead or cancelled."""

    queued = "queued"
    running = "running"
    done = "done"
    dead = "dead"
    cancelled = "cancelled"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16)


class Job(Base):
    """An operator's request for work (its config is what the worker runs), and its outcome."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_kind_status", "kind", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "job_kind"))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus, "job_status"), default=JobStatus.queued
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    total_units: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WorkUnit(Base):
    """One claimable piece of a job (e.g. one item to judge), leased to one worker at a time."""

    __tablename__ = "work_units"
    __table_args__ = (
        Index("ix_work_units_claim", "kind", "status", "run_after", "id"),
        Index("ix_work_units_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "work_kind"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[WorkStatus] = mapped_column(
        _enum(WorkStatus, "work_status"), default=WorkStatus.queued
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
