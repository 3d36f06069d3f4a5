"""Submitting human labels: validated against the item, idempotent, never updated in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.domain.assignment import get_own_assignment, slots_taken
from service.errors import Conflict, Invalid
from service.models import (
    Assignment,
    AssignmentStatus,
    FeedbackKind,
    HumanLabel,
    Item,
    ItemResponse,
    Project,
)


@dataclass(frozen=True)
class LabelInput:
    """A label as submitted: its kind, its value (kind-specific) and an optional rationale."""

    kind: FeedbackKind
    value: dict[str, Any]
    rationale: str | None


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


def _validated_value(session: Session, item: Item, label: LabelInput) -> dict[str, Any]:
    if label.kind != item.kind:
        raise Invalid(f"this item takes {item.kind.value} labels, not {label.kind.value}", "kind")
    if label.kind != FeedbackKind.listwise:
        return label.value
    response_ids = list(
        session.scalars(select(ItemResponse.response_id).where(ItemResponse.item_id == item.id))
    )
    return {"ranking": normalise_ranking(label.value["ranking"], response_ids)}


def _replay(
    existing: HumanLabel, assignment: Assignment, value: dict[str, Any], label: LabelInput
) -> HumanLabel:
    if existing.assignment_id != assignment.id:
        raise Conflict("this Idempotency-Key was used for another assignment", "Idempotency-Key")
    if existing.value != value or existing.rationale != label.rationale:
        raise Conflict(
            "a different label was already submitted for this assignment", "assignment_id"
        )
    return existing


def submit_label(
    session: Session,
    assignment_id: int,
    annotator_id: int,
    label: LabelInput,
    idempotency_key: str | None = None,
) -> tuple[HumanLabel, bool]:
    """Store the caller's label for an assignment; returns (label, created).

    A retried submit (same assignment, or same Idempotency-Key) with the same content returns
    the stored label and creates nothing; different content is a conflict.
    """
    begin_write(session)
    assignment = get_own_assignment(session, assignment_id, annotator_id)
    item = session.scalar(select(Item).where(Item.id == assignment.item_id).with_for_update())
    assert item is not None  # foreign key
    value = _validated_value(session, item, label)
    previous = session.scalar(select(HumanLabel).where(HumanLabel.assignment_id == assignment.id))
    if previous is None and idempotency_key is not None:
        previous = session.scalar(
            select(HumanLabel).where(
                HumanLabel.annotator_id == annotator_id,
                HumanLabel.idempotency_key == idempotency_key,
            )
        )
    if previous is not None:
        session.commit()
        return _replay(previous, assignment, value, label), False
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict("this assignment was skipped; it takes no label", "assignment_id")
    now = utcnow()
    overlap = session.scalar(select(Project.overlap).where(Project.id == item.project_id)) or 1
    expired = assignment.lease_expires_at <= now
    if expired and slots_taken(session, item.id, now, excluding=assignment.id) >= overlap:
        raise Conflict("the lease expired and the item was given to others", "assignment_id")
    row = HumanLabel(
        project_id=item.project_id,
        item_id=item.id,
        assignment_id=assignment.id,
        annotator_id=annotator_id,
        kind=label.kind,
        value=value,
        rationale=label.rationale,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    session.add(row)
    assignment.status = AssignmentStatus.submitted
    assignment.completed_at = now
    item.label_count += 1
    item.is_complete = item.label_count >= overlap
    session.commit()
    return row, True
