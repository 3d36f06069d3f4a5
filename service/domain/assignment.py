"""Handing out work: leases with overlap, never the same item twice to one annotator.

This is the annotators' hot path, so it uses lean Core statements: a lease is the current
lease check, one claim query, one insert and one item read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.domain.items import ItemView, load_item_view
from service.errors import Conflict, NotFound
from service.models import Assignment, AssignmentStatus, Item, Project

# Candidates tried per lease: a candidate can turn out full once its lock is held.
_CLAIM_ATTEMPTS = 20


@dataclass(frozen=True)
class Lease:
    """An assignment with its item, as the annotator sees it."""

    id: int
    project_id: int
    status: AssignmentStatus
    leased_at: dt.datetime
    lease_expires_at: dt.datetime
    instructions: str
    item: ItemView


@dataclass(frozen=True)
class Progress:
    """An annotator's progress in a project."""

    done: int
    remaining: int


def holding_slot(now: dt.datetime | BindParameter[dt.datetime]) -> ColumnElement[bool]:
    """Assignments that occupy one of an item's `overlap` slots at `now`."""
    return or_(
        Assignment.status == AssignmentStatus.submitted,
        and_(Assignment.status == AssignmentStatus.leased, Assignment.lease_expires_at > now),
    )


def slots_taken(session: Session, item_id: int, now: dt.datetime, *, excluding: int = 0) -> int:
    """How many assignments hold a slot of the item now (fresh read, after the item is locked)."""
    taken = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.item_id == item_id, Assignment.id != excluding, holding_slot(now))
    )
    return int(taken or 0)


def _project(session: Session, project_id: int) -> tuple[int, int, str]:
    row = session.execute(
        select(Project.overlap, Project.lease_seconds, Project.instructions).where(
            Project.id == project_id
        )
    ).first()
    if row is None:
        raise NotFound(f"project {project_id} not found", "project_id")
    return row[0], row[1], row[2]


def _statements() -> tuple[Select[Any, Any, Any, Any, Any, Any, Any], Select[int], Any]:
    """The lease's statements, built once: the project with the caller's live lease, the
    claim of the next item, and the insert that re-checks the item's free slots."""
    now: BindParameter[dt.datetime] = bindparam(
        "p_now", type_=Assignment.__table__.c.leased_at.type
    )
    annotator: BindParameter[int] = bindparam("p_annotator_id", type_=Integer())
    current = (
        select(
            Project.overlap,
            Project.lease_seconds,
            Project.instructions,
            Assignment.id,
            Assignment.item_id,
            Assignment.leased_at,
            Assignment.lease_expires_at,
        )
        .select_from(Project)
        .outerjoin(
            Assignment,
            and_(
                Assignment.project_id == Project.id,
                Assignment.annotator_id == annotator,
                Assignment.status == AssignmentStatus.leased,
                Assignment.lease_expires_at > now,
            ),
        )
        .where(Project.id == bindparam("p_project_id"))
        .order_by(Assignment.id)
        .limit(1)
    )
    taken = (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.item_id == Item.id, holding_slot(now))
        .scalar_subquery()
    )
    mine = exists().where(Assignment.item_id == Item.id, Assignment.annotator_id == annotator)
    claim = (
        select(Item.id)
        .where(
            Item.project_id == bindparam("p_project_id"),
            Item.is_complete.is_(False),
            ~mine,
            taken < bindparam("p_overlap"),
        )
        .order_by(Item.id)
        .limit(1)
        # Concurrent lessors skip each other's locked rows (PostgreSQL); on SQLite the writer
        # lock (BEGIN IMMEDIATE) already serialises them.
        .with_for_update(skip_locked=True, of=Item)
    )
    columns = Assignment.__table__.c
    item_id = bindparam("p_item_id", type_=columns.item_id.type)
    # A fresh count in a new statement: the claim's snapshot may predate a lease committed
    # just before its row lock was granted (PostgreSQL, READ COMMITTED).
    free = select(func.count()).select_from(Assignment).where(
        Assignment.item_id == item_id, holding_slot(now)
    ).scalar_subquery() < bindparam("p_overlap")
    values = select(
        bindparam("p_project_id", type_=columns.project_id.type),
        item_id,
        bindparam("p_annotator_id", type_=columns.annotator_id.type),
        bindparam("p_status", type_=columns.status.type),
        bindparam("p_now", type_=columns.leased_at.type),
        bindparam("p_expires", type_=columns.lease_expires_at.type),
    ).where(
        free,
        # ...and the same stale snapshot may have missed this annotator's own lease of the
        # item from a concurrent request (two browser tabs).
        ~exists().where(Assignment.item_id == item_id, Assignment.annotator_id == annotator),
    )
    insert_if_free = (
        insert(Assignment)
        .from_select(
            ["project_id", "item_id", "annotator_id", "status", "leased_at", "lease_expires_at"],
            values,
        )
        .returning(Assignment.id)
    )
    return current, claim, insert_if_free


_CURRENT, _CLAIM, _INSERT_IF_FREE = _statements()
# The claim that waits for locked rows instead of skipping them: asked once before answering
# "nothing left", since a row locked for a few milliseconds by another lessor or a submit may
# still have a slot for this annotator.
_CLAIM_WAITING = _CLAIM.with_for_update(of=Item)


def lease_next(session: Session, project_id: int, annotator_id: int) -> Lease | None:
    """The caller's current lease in the project, else a new one on the next open item."""
    begin_write(session)
    conn = session.connection()
    now = utcnow()
    params: dict[str, Any] = {
        "p_project_id": project_id,
        "p_annotator_id": annotator_id,
        "p_now": now,
    }
    row = conn.execute(_CURRENT, params).first()
    if row is None:
        raise NotFound(f"project {project_id} not found", "project_id")
    overlap, lease_seconds, instructions, assignment_id, item_id, leased_at, expires = row
    if assignment_id is None:
        params["p_overlap"] = overlap
        leased_at, expires = now, now + dt.timedelta(seconds=lease_seconds)
        assignment_id, item_id = _claim(conn, params, expires)
        if assignment_id is None:
            session.commit()
            return None
    item = load_item_view(session, item_id)
    session.commit()
    return Lease(
        assignment_id, project_id, AssignmentStatus.leased, leased_at, expires, instructions, item
    )


def _claim(conn: Connection, params: dict[str, Any], expires: dt.datetime) -> tuple[Any, Any]:
    """Lease the next free item: (assignment id, item id), or (None, None) when none is left."""
    rejected: list[int] = []
    waited = False
    for _ in range(_CLAIM_ATTEMPTS):
        claim = _CLAIM_WAITING if waited else _CLAIM
        if rejected:
            claim = claim.where(Item.id.not_in(rejected))
        item_id = conn.execute(claim, params).scalar()
        if item_id is None:
            if waited or conn.dialect.name == "sqlite":
                return None, None
            waited = True
            continue
        assignment_id = conn.execute(
            _INSERT_IF_FREE,
            {
                **params,
                "p_item_id": item_id,
                "p_status": AssignmentStatus.leased,
                "p_expires": expires,
            },
        ).scalar()
        if assignment_id is not None:
            return assignment_id, item_id
        rejected.append(item_id)
    return None, None


def get_own_assignment(session: Session, assignment_id: int, annotator_id: int) -> Assignment:
    """The caller's assignment row; another annotator's is reported as not found."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.annotator_id != annotator_id:
        raise NotFound(f"assignment {assignment_id} not found", "assignment_id")
    return assignment


def _lease_of(session: Session, assignment: Assignment) -> Lease:
    _, _, instructions = _project(session, assignment.project_id)
    return Lease(
        assignment.id,
        assignment.project_id,
        assignment.status,
        assignment.leased_at,
        assignment.lease_expires_at,
        instructions,
        load_item_view(session, assignment.item_id),
    )


def get_lease(session: Session, assignment_id: int, annotator_id: int) -> Lease:
    """One of the caller's assignments with its item."""
    return _lease_of(session, get_own_assignment(session, assignment_id, annotator_id))


def skip_assignment(session: Session, assignment_id: int, annotator_id: int) -> Lease:
    """Give an item back: its slot frees up and the caller will not get it again."""
    begin_write(session)
    assignment = get_own_assignment(session, assignment_id, annotator_id)
    if assignment.status == AssignmentStatus.submitted:
        raise Conflict("assignment already has a label; it cannot be skipped", "assignment_id")
    if assignment.status == AssignmentStatus.leased:
        session.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id)
            .values(status=AssignmentStatus.skipped, completed_at=utcnow())
        )
        session.refresh(assignment)
    lease = _lease_of(session, assignment)
    session.commit()
    return lease


def progress(session: Session, project_id: int, annotator_id: int) -> Progress:
    """Items the annotator labeled, and items still open to them (the current lease included)."""
    _project(session, project_id)
    done = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.project_id == project_id,
            Assignment.annotator_id == annotator_id,
            Assignment.status == AssignmentStatus.submitted,
        )
    )
    finished = exists().where(
        Assignment.item_id == Item.id,
        Assignment.annotator_id == annotator_id,
        Assignment.status != AssignmentStatus.leased,
    )
    remaining = session.scalar(
        select(func.count())
        .select_from(Item)
        .where(Item.project_id == project_id, Item.is_complete.is_(False), ~finished)
    )
    return Progress(done=int(done or 0), remaining=int(remaining or 0))
