"""The work queue: enqueue, claim, heartbeat, complete, fail and settle work rows.

All SQL of the queue is here. A claim takes a batch of one job's rows: queued rows whose
`run_after` has come, plus running rows whose lease has expired (a dead worker's batch is
re-claimed by the claim itself). PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP
LOCKED`); SQLite runs the same statements in a single-writer (BEGIN IMMEDIATE) transaction.
A row only counts as done when its current holder completes it, so a worker whose lease was
taken over cannot write results twice; results go in under unique constraints besides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.models import ACTIVE_JOB_STATUSES, Job, JobKind, JobStatus, WorkStatus, WorkUnit

_OPEN = (WorkStatus.queued, WorkStatus.running)
_BACKOFF_CAP_SECONDS = 300
_JOBS_PER_CLAIM = 5  # jobs a claim looks at before giving up for this round


@dataclass(frozen=True)
class ClaimedUnit:
    """A work row now leased to the claiming worker."""

    id: int
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Claim:
    """A batch of one job's work rows, leased to one worker."""

    job_id: int
    units: list[ClaimedUnit]


def enqueue(
    session: Session, job: Job, payloads: Iterable[dict[str, Any]], *, max_attempts: int
) -> int:
    """Add work rows for a job (the caller commits); returns how many."""
    rows = [
        {"job_id": job.id, "kind": job.kind, "payload": p, "max_attempts": max_attempts}
        for p in payloads
    ]
    for start in range(0, len(rows), 5000):
        session.connection().execute(insert(WorkUnit), rows[start : start + 5000])
    return len(rows)


def _claimable(now: dt.datetime) -> Any:
    return or_(
        and_(WorkUnit.status == WorkStatus.queued, WorkUnit.run_after <= now),
        and_(
            WorkUnit.status == WorkStatus.running,
            WorkUnit.lease_expires_at < now,
            WorkUnit.attempts < WorkUnit.max_attempts,
        ),
    )


def _next_job_id(session: Session, kind: JobKind, now: dt.datetime, skip: set[int]) -> int | None:
    return session.scalar(
        select(WorkUnit.job_id)
        .join(Job, Job.id == WorkUnit.job_id)
        .where(
            WorkUnit.kind == kind,
            _claimable(now),
            Job.status.in_(ACTIVE_JOB_STATUSES),
            WorkUnit.job_id.not_in(skip),
        )
        .order_by(WorkUnit.id)
        .limit(1)
    )


def has_open_work(session: Session, kind: JobKind) -> bool:
    """Whether any active job of this kind still has queued or running rows."""
    return bool(
        session.scalar(
            select(
                select(WorkUnit.id)
                .join(Job, Job.id == WorkUnit.job_id)
                .where(
                    WorkUnit.kind == kind,
                    WorkUnit.status.in_(_OPEN),
                    Job.status.in_(ACTIVE_JOB_STATUSES),
                )
                .exists()
            )
        )
    )


def claim(
    session: Session, kind: JobKind, worker_id: str, *, limit: int | None, lease_seconds: float
) -> Claim | None:
    """Lease up to `limit` rows (None: the job's `batch_size`) of the oldest job with work of
    this kind, and commit. A job whose claimable rows other workers hold is passed over."""
    begin_write(session)
    now = utcnow()
    _reap_exhausted(session, kind, now)
    tried: set[int] = set()
    while len(tried) < _JOBS_PER_CLAIM:
        job_id = _next_job_id(session, kind, now, tried)
        if job_id is None:
            break
        rows = _claim_rows(
            session, job_id, worker_id, limit, now + dt.timedelta(seconds=lease_seconds), now
        )
        if rows:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.queued)
                .values(status=JobStatus.running, started_at=now)
            )
            session.commit()
            units = [ClaimedUnit(r.id, r.payload, r.attempts) for r in rows]
            return Claim(job_id, sorted(units, key=lambda u: u.id))
        tried.add(job_id)
    session.commit()
    return None


def _claim_rows(
    session: Session,
    job_id: int,
    worker_id: str,
    limit: int | None,
    lease_expires_at: dt.datetime,
    now: dt.datetime,
) -> list[Any]:
    if limit is None:
        config = session.scalar(select(Job.config).where(Job.id == job_id)) or {}
        limit = int(config.get("batch_size", 16))
    candidates = (
        select(WorkUnit.id)
        .where(WorkUnit.job_id == job_id, _claimable(now))
        .order_by(WorkUnit.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(
        session.execute(
            update(WorkUnit)
            .where(WorkUnit.id.in_(candidates))
            .values(
                status=WorkStatus.running,
                attempts=WorkUnit.attempts + 1,
                locked_by=worker_id,
                lease_expires_at=lease_expires_at,
            )
            .returning(WorkUnit.id, WorkUnit.payload, WorkUnit.attempts)
        ).all()
    )


def _reap_exhausted(session: Session, kind: JobKind, now: dt.datetime) -> None:
    """Rows whose holders kept dying until no attempts were left become dead."""
    reaped = session.execute(
        update(WorkUnit)
        .where(
            WorkUnit.kind == kind,
            WorkUnit.status == WorkStatus.running,
            WorkUnit.lease_expires_at < now,
            WorkUnit.attempts >= WorkUnit.max_attempts,
        )
        .values(
            status=WorkStatus.dead,
            finished_at=now,
            error=func.coalesce(WorkUnit.error, "the lease expired on every attempt"),
        )
        .returning(WorkUnit.job_id)
    ).all()
    for job_id in {r.job_id for r in reaped}:
        settle_job(session, job_id)


def heartbeat(
    session: Session, worker_id: str, unit_ids: Sequence[int], *, lease_seconds: float
) -> set[int]:
    """Extend the lease of the rows this worker still holds; returns their ids, and commits."""
    begin_write(session)
    rows = session.execute(
        update(WorkUnit)
        .where(
            WorkUnit.id.in_(unit_ids),
            WorkUnit.locked_by == worker_id,
            WorkUnit.status == WorkStatus.running,
        )
        .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds))
        .returning(WorkUnit.id)
    ).all()
    session.commit()
    return {r.id for r in rows}


def _lock_in_order(session: Session, condition: Any) -> None:
    """Lock matching rows in id order, so concurrent bulk updates cannot deadlock."""
    if session.get_bind().dialect.name != "sqlite":
        session.execute(
            select(WorkUnit.id).where(condition).order_by(WorkUnit.id).with_for_update()
        )


def complete(session: Session, worker_id: str, unit_ids: Sequence[int]) -> set[int]:
    """Mark done the rows this worker still holds; returns their ids. The caller commits.

    Call inside the transaction that writes the results, and write results only for the ids
    returned: a row whose lease another worker took over is not this worker's to finish.
    """
    begin_write(session)
    _lock_in_order(session, WorkUnit.id.in_(unit_ids))
    rows = session.execute(
        update(WorkUnit)
        .where(
            WorkUnit.id.in_(unit_ids),
            WorkUnit.locked_by == worker_id,
            WorkUnit.status == WorkStatus.running,
        )
        .values(status=WorkStatus.done, finished_at=utcnow(), lease_expires_at=None)
        .returning(WorkUnit.id)
    ).all()
    return {r.id for r in rows}


def fail(
    session: Session,
    worker_id: str,
    unit_ids: Sequence[int],
    error: str,
    *,
    backoff_seconds: float = 2.0,
) -> None:
    """Give rows back after an error: retried later with backoff, or dead when out of attempts."""
    begin_write(session)
    now = utcnow()
    held = session.execute(
        select(WorkUnit.id, WorkUnit.job_id, WorkUnit.attempts, WorkUnit.max_attempts)
        .where(
            WorkUnit.id.in_(unit_ids),
            WorkUnit.locked_by == worker_id,
            WorkUnit.status == WorkStatus.running,
        )
        .order_by(WorkUnit.id)
        .with_for_update()
    ).all()
    for row in held:
        if row.attempts >= row.max_attempts:
            values: dict[str, Any] = {"status": WorkStatus.dead, "finished_at": now}
        else:
            delay = min(backoff_seconds * 2 ** (row.attempts - 1), _BACKOFF_CAP_SECONDS)
            values = {"status": WorkStatus.queued, "run_after": now + dt.timedelta(seconds=delay)}
        session.execute(
            update(WorkUnit)
            .where(WorkUnit.id == row.id)
            .values(**values, error=error[:4000], lease_expires_at=None, locked_by=None)
        )
    for job_id in {row.job_id for row in held}:
        settle_job(session, job_id)
    session.commit()


def unit_counts(session: Session, job_id: int) -> dict[WorkStatus, int]:
    """How many of a job's rows are in each status."""
    counts = dict.fromkeys(WorkStatus, 0)
    for status, n in session.execute(
        select(WorkUnit.status, func.count())
        .where(WorkUnit.job_id == job_id)
        .group_by(WorkUnit.status)
    ).all():
        counts[WorkStatus(status)] = n
    return counts


def settle_job(session: Session, job_id: int) -> Job | None:
    """Finish the job when none of its rows is open any more (the caller commits).

    The job row is locked first, so of two workers finishing a job's last rows at once, the
    second sees the first's rows done and settles it.
    """
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # a job loaded earlier may be stale
    )
    if job is None or job.status not in ACTIVE_JOB_STATUSES:
        return job
    still_open = select(WorkUnit.id).where(WorkUnit.job_id == job_id, WorkUnit.status.in_(_OPEN))
    if session.scalar(select(still_open.exists())):
        return job
    counts = unit_counts(session, job_id)
    job.finished_at = utcnow()
    if counts[WorkStatus.dead]:
        job.status = JobStatus.failed
        first_error = session.scalar(
            select(WorkUnit.error)
            .where(WorkUnit.job_id == job_id, WorkUnit.status == WorkStatus.dead)
            .order_by(WorkUnit.id)
            .limit(1)
        )
        job.error = (
            f"{counts[WorkStatus.dead]} of {job.total_units} work units failed: {first_error}"
        )
    else:
        job.status = JobStatus.succeeded
    return job


def fail_job(session: Session, job_id: int, error: str) -> None:
    """Fail a whole job at once (its configuration cannot run): open rows die, and commit."""
    begin_write(session)
    session.execute(
        update(WorkUnit)
        .where(WorkUnit.job_id == job_id, WorkUnit.status.in_(_OPEN))
        .values(status=WorkStatus.dead, finished_at=utcnow(), lease_expires_at=None, error=error)
    )
    settle_job(session, job_id)
    session.commit()


def cancel_job(session: Session, job_id: int) -> Job | None:
    """Stop an active job: its open rows are cancelled; results a worker sends later are
    dropped. Returns the job, or None when it is not active (the caller rolls back)."""
    begin_write(session)
    open_rows = (WorkUnit.job_id == job_id) & WorkUnit.status.in_(_OPEN)
    _lock_in_order(session, open_rows)
    session.execute(
        update(WorkUnit)
        .where(open_rows)
        .values(status=WorkStatus.cancelled, finished_at=utcnow(), lease_expires_at=None)
    )
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None or job.status not in ACTIVE_JOB_STATUSES:
        return None
    job.status = JobStatus.cancelled
    job.finished_at = utcnow()
    return job
