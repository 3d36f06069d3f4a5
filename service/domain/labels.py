"""Submitting human labels: validated against the item, idempotent, never updated in place.

The common case (a live lease, first submit) is one read and three writes in one
transaction; retries, expired leases and skipped assignments take the slower paths.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.domain.assignment import slots_taken
from service.domain.items import LabelView
from service.domain.quick_submit import (
    LABEL_BINDS,
    count_label,
    one_statement_submit,
    stored_view,
    submit_params,
)
from service.errors import Conflict, Invalid, NotFound
from service.models import (
    Assignment,
    AssignmentStatus,
    FeedbackKind,
    HumanLabel,
    Item,
    ItemResponse,
    LabelOrigin,
    Project,
    User,
)


@dataclass(frozen=True)
class LabelInput:
    """A label as submitted: its kind, its value (kind-specific) and an optional rationale."""

    kind: FeedbackKind
    value: dict[str, Any]
    rationale: str | None


@dataclass(frozen=True)
class _Target:
    assignment_id: int
    status: AssignmentStatus
    lease_expires_at: dt.datetime
    item_id: int
    item_kind: FeedbackKind
    project_id: int
    overlap: int


_ONE_STATEMENT_SUBMIT = one_statement_submit()


def _try_one_statement(
    session: Session,
    assignment_id: int,
    annotator: tuple[int, str],
    label: LabelInput,
    idempotency_key: str | None,
) -> LabelView | None:
    connection = session.connection()  # checked out before the clock is read
    params = submit_params(assignment_id, annotator[0], label, idempotency_key, utcnow())
    try:
        # On the Connection: the ORM would take a dict of parameters for bulk-insert rows.
        row = connection.execute(_ONE_STATEMENT_SUBMIT, params).first()
    except IntegrityError:
        row = None  # e.g. an Idempotency-Key used before: the general path explains
    if row is None:
        session.rollback()
        return None
    session.commit()
    return stored_view(row[0], row[1], annotator[1], params, label)


def normalise_ranking(ranking: list[int | list[int]], response_ids: list[int]) -> list[list[int]]:
    """A ranking as tie groups, checked to be a permutation of the item's responses."""
    groups = [[entry] if isinstance(entry, int) else list(entry) for entry in ranking]
    if any(not group for group in groups):
        raise Invalid("a tie group in the ranking is empty", "ranking")
    flat = [rid for group in groups for rid in group]
    if len(flat) != len(set(flat)):
        raise Invalid("the ranking names a response more than once", "ranking")
    if set(flat) != set(response_ids):
        raise Invalid(
            f"the ranking must list exactly the item's responses {sorted(response_ids)}",
            "ranking",
        )
    return groups


_TARGET = (
    select(
        Assignment.id,
        Assignment.status,
        Assignment.lease_expires_at,
        Assignment.annotator_id,
        Item.id,
        Item.kind,
        Item.project_id,
        Project.overlap,
    )
    .join(Item, Item.id == Assignment.item_id)
    .join(Project, Project.id == Item.project_id)
    .where(Assignment.id == bindparam("p_assignment_id"))
)
# Core statements on the tables (not the ORM entities): no unit-of-work on the hot path.
_LABELS, _ASSIGNMENTS, _ITEMS = (
    cast(Table, model.__table__) for model in (HumanLabel, Assignment, Item)
)
_INSERT_LABEL = insert(_LABELS).returning(_LABELS.c.id)
_MARK_SUBMITTED = (
    update(_ASSIGNMENTS)
    .where(
        _ASSIGNMENTS.c.id == bindparam("p_assignment_id"),
        _ASSIGNMENTS.c.status == AssignmentStatus.leased,
    )
    .values(status=AssignmentStatus.submitted, completed_at=bindparam("p_now"))
)
_COUNT_LABEL = count_label(LABEL_BINDS["item_id"])


def _target(session: Session, assignment_id: int, annotator_id: int) -> _Target:
    row = session.connection().execute(_TARGET, {"p_assignment_id": assignment_id}).first()
    if row is None or row[3] != annotator_id:
        raise NotFound(f"assignment {assignment_id} not found", "assignment_id")
    return _Target(row[0], row[1], row[2], row[4], row[5], row[6], row[7])


def _validated_value(session: Session, target: _Target, label: LabelInput) -> dict[str, Any]:
    if label.kind != target.item_kind:
        raise Invalid(
            f"this item takes {target.item_kind.value} labels, not {label.kind.value}", "kind"
        )
    if label.kind != FeedbackKind.listwise:
        return label.value
    response_ids = list(
        session.scalars(
            select(ItemResponse.response_id).where(ItemResponse.item_id == target.item_id)
        )
    )
    return {"ranking": normalise_ranking(label.value["ranking"], response_ids)}


def _replay(
    session: Session,
    target: _Target,
    annotator_id: int,
    value: dict[str, Any],
    label: LabelInput,
    idempotency_key: str | None,
) -> LabelView | None:
    """The label stored by an earlier identical submit, a Conflict, or None if there is none."""
    query = select(HumanLabel, User.name).join(User, User.id == HumanLabel.annotator_id)
    previous = session.execute(
        query.where(HumanLabel.assignment_id == target.assignment_id)
    ).first()
    if previous is None and idempotency_key is not None:
        previous = session.execute(
            query.where(
                HumanLabel.annotator_id == annotator_id,
                HumanLabel.idempotency_key == idempotency_key,
            )
        ).first()
    if previous is None:
        return None
    existing, name = previous
    if existing.assignment_id != target.assignment_id:
        raise Conflict("this Idempotency-Key was used for another assignment", "Idempotency-Key")
    if existing.value != value or existing.rationale != label.rationale:
        raise Conflict(
            "a different label was already submitted for this assignment", "assignment_id"
        )
    return LabelView.of(existing, name)


def _check_lease(session: Session, target: _Target, now: dt.datetime) -> None:
    if target.status == AssignmentStatus.skipped:
        raise Conflict("this assignment was skipped; it takes no label", "assignment_id")
    if target.lease_expires_at > now:
        return
    # Expired: accept only while the item still has a free slot (counted under its row lock).
    session.execute(select(Item.id).where(Item.id == target.item_id).with_for_update())
    if slots_taken(session, target.item_id, now, excluding=target.assignment_id) >= target.overlap:
        raise Conflict("the lease expired and the item was given to others", "assignment_id")


def submit_label(
    session: Session,
    assignment_id: int,
    annotator: tuple[int, str],
    label: LabelInput,
    idempotency_key: str | None = None,
) -> tuple[LabelView, bool]:
    """Store the caller's label for an assignment; returns (label, created).

    A retried submit (same assignment, or same Idempotency-Key) with the same content returns
    the stored label and creates nothing; different content is a conflict.
    """
    annotator_id, annotator_name = annotator
    if session.get_bind().dialect.name == "postgresql" and label.kind != FeedbackKind.listwise:
        stored = _try_one_statement(session, assignment_id, annotator, label, idempotency_key)
        if stored is not None:
            return stored, True
    begin_write(session)
    target = _target(session, assignment_id, annotator_id)
    value = _validated_value(session, target, label)
    if target.status != AssignmentStatus.leased or idempotency_key is not None:
        replayed = _replay(session, target, annotator_id, value, label, idempotency_key)
        if replayed is not None:
            session.commit()
            return replayed, False
    now = utcnow()
    _check_lease(session, target, now)
    conn = session.connection()
    try:
        label_id = conn.execute(
            _INSERT_LABEL,
            {
                "project_id": target.project_id,
                "item_id": target.item_id,
                "assignment_id": target.assignment_id,
                "annotator_id": annotator_id,
                "kind": label.kind,
                "value": value,
                "rationale": label.rationale,
                "origin": LabelOrigin.annotation,
                "idempotency_key": idempotency_key,
                "created_at": now,
            },
        ).scalar_one()
    except IntegrityError:
        # A concurrent identical submit won the race: answer as a retry.
        session.rollback()
        return _replay_after_race(
            session, assignment_id, annotator_id, value, label, idempotency_key
        )
    marked = conn.execute(
        _MARK_SUBMITTED, {"p_assignment_id": target.assignment_id, "p_now": now}
    ).rowcount
    if marked != 1:  # skipped by a concurrent request since we read it
        session.rollback()
        raise Conflict("this assignment was skipped; it takes no label", "assignment_id")
    conn.execute(_COUNT_LABEL, {"p_item_id": target.item_id})
    session.commit()
    view = LabelView(
        label_id,
        target.item_id,
        target.assignment_id,
        annotator_name,
        label.kind,
        value,
        label.rationale,
        LabelOrigin.annotation.value,
        now,
    )
    return view, True


def _replay_after_race(
    session: Session,
    assignment_id: int,
    annotator_id: int,
    value: dict[str, Any],
    label: LabelInput,
    idempotency_key: str | None,
) -> tuple[LabelView, bool]:
    target = _target(session, assignment_id, annotator_id)
    replayed = _replay(session, target, annotator_id, value, label, idempotency_key)
    session.commit()
    if replayed is None:
        raise Conflict("the label could not be stored; retry", "assignment_id")
    return replayed, False
