"""Handing out work: leases with overlap, never the same item twice to one annotator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.errors import Conflict, NotFound
from service.models import Assignment, AssignmentStatus, Item, Project

# Candidates fetched per claim attempt; a candidate can turn out full after its lock is held.
_CLAIM_ATTEMPTS = 20


@dataclass(frozen=True)
class Progress:
    """An annotator's progress in a project."""

    done: int
    remaining: int


def _holding_slot(now: dt.datetime) -> ColumnElement[bool]:
    """Assignments that occupy one of an item's `overlap` slots at `now`."""
    return or_(
        Assignment.status == AssignmentStatus.submitted,
        and_(Assignment.status == AssignmentStatus.leased, Assignment.lease_expires_at > now),
    )


def slots_taken(session: Session, item_id: int, now: dt.datetime, *, excluding: int = 0) -> int:
    """How many assignments hold a slot of the item now (fresh read, after the item is locked)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.item_id == item_id, Assignment.id != excluding, _holding_slot(now))
        )
        or 0
    )


def _candidate_items(
    session: Session, project: Project, annotator_id: int, now: dt.datetime, skip: list[int]
) -> Item | None:
    taken = (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.item_id == Item.id, _holding_slot(now))
        .scalar_subquery()
    )
    mine = exists().where(Assignment.item_id == Item.id, Assignment.annotator_id == annotator_id)
    query = (
        select(Item)
        .where(
            Item.project_id == project.id,
            Item.is_complete.is_(False),
            ~mine,
            taken < project.overlap,
        )
        .order_by(Item.id)
        .limit(1)
    )
    if skip:
        query = query.where(Item.id.not_in(skip))
    # On PostgreSQL concurrent lessors skip each other's locked rows; SQLite's writer lock
    # (BEGIN IMMEDIATE) already serialises them.
    query = query.with_for_update(skip_locked=True, of=Item)
    return session.scalar(query)


def lease_next(session: Session, project: Project, annotator_id: int) -> Assignment | None:
    """The caller's current lease in the project, else a new one on the next open item."""
    begin_write(session)
    now = utcnow()
    current = session.scalar(
        select(Assignment)
        .where(
            Assignment.annotator_id == annotator_id,
            Assignment.project_id == project.id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.lease_expires_at > now,
        )
        .order_by(Assignment.id)
        .limit(1)
    )
    if current is not None:
        session.commit()
        return current
    rejected: list[int] = []
    for _ in range(_CLAIM_ATTEMPTS):
        item = _candidate_items(session, project, annotator_id, now, rejected)
        if item is None:
            break
        # The item row is locked now; count again with a fresh read, since the candidate
        # query's count may predate a lease committed just before we got the lock.
        if slots_taken(session, item.id, now) >= project.overlap:
            rejected.append(item.id)
            continue
        assignment = Assignment(
            project_id=project.id,
            item_id=item.id,
            annotator_id=annotator_id,
            status=AssignmentStatus.leased,
            leased_at=now,
            lease_expires_at=now + dt.timedelta(seconds=project.lease_seconds),
        )
        session.add(assignment)
        session.commit()
        return assignment
    session.commit()
    return None


def get_own_assignment(session: Session, assignment_id: int, annotator_id: int) -> Assignment:
    """The caller's assignment; another annotator's is reported as not found."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.annotator_id != annotator_id:
        raise NotFound(f"assignment {assignment_id} not found", "assignment_id")
    return assignment


def skip_assignment(session: Session, assignment_id: int, annotator_id: int) -> Assignment:
    """Give an item back: its slot frees up and the caller will not get it again."""
    begin_write(session)
    assignment = get_own_assignment(session, assignment_id, annotator_id)
    if assignment.status == AssignmentStatus.submitted:
        raise Conflict("assignment already has a label; it cannot be skipped", "assignment_id")
    if assignment.status == AssignmentStatus.leased:
        assignment.status = AssignmentStatus.skipped
        assignment.completed_at = utcnow()
    session.commit()
    return assignment


def progress(session: Session, project: Project, annotator_id: int) -> Progress:
    """Items the annotator labeled, and items still open to them."""
    done = (
        session.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(
                Assignment.project_id == project.id,
                Assignment.annotator_id == annotator_id,
                Assignment.status == AssignmentStatus.submitted,
            )
        )
        or 0
    )
    finished = exists().where(
        Assignment.item_id == Item.id,
        Assignment.annotator_id == annotator_id,
        Assignment.status != AssignmentStatus.leased,
    )
    remaining = (
        session.scalar(
            select(func.count())
            .select_from(Item)
            .where(Item.project_id == project.id, Item.is_complete.is_(False), ~finished)
        )
        or 0
    )
    return Progress(done=done, remaining=remaining)
