"""Reading items: their prompt, responses in order, and labels, in as few queries as possible."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from service.models import FeedbackKind, HumanLabel, Item, ItemResponse, Prompt, Response, User


@dataclass(frozen=True)
class ResponseView:
    """A response at its position in an item."""

    id: int
    text: str
    source: str


@dataclass(frozen=True)
class LabelView:
    """A stored human label, with its annotator's name."""

    id: int
    item_id: int
    assignment_id: int | None
    annotator: str
    kind: FeedbackKind
    value: dict[str, Any]
    rationale: str | None
    origin: str
    created_at: dt.datetime

    @classmethod
    def of(cls, label: HumanLabel, annotator: str) -> LabelView:
        """The view of an ORM label row."""
        return cls(
            label.id,
            label.item_id,
            label.assignment_id,
            annotator,
            label.kind,
            label.value,
            label.rationale,
            label.origin.value,
            label.created_at,
        )


@dataclass
class ItemView:
    """An item with what is needed to show or export it (plain values, no ORM state)."""

    id: int
    project_id: int
    kind: FeedbackKind
    prompt: str
    responses: list[ResponseView]
    external_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    label_count: int
    is_complete: bool
    created_at: dt.datetime
    labels: list[LabelView] = field(default_factory=list)


_ITEM_COLUMNS = (
    Item.id,
    Item.project_id,
    Item.kind,
    Item.external_id,
    Item.tags,
    Item.metadata_,
    Item.label_count,
    Item.is_complete,
    Item.created_at,
)


_ITEM_VIEW = (
    select(*_ITEM_COLUMNS, Prompt.text, Response.id, Response.text, Response.source)
    .join(Prompt, Prompt.id == Item.prompt_id)
    .join(ItemResponse, ItemResponse.item_id == Item.id)
    .join(Response, Response.id == ItemResponse.response_id)
    .where(Item.id == bindparam("p_item_id"))
    .order_by(ItemResponse.position)
)


def load_item_view(session: Session, item_id: int) -> ItemView:
    """One item's view in a single query (the annotator's hot path; no labels)."""
    rows = session.connection().execute(_ITEM_VIEW, {"p_item_id": item_id}).all()
    first = rows[0]
    return ItemView(
        id=first[0],
        project_id=first[1],
        kind=first[2],
        prompt=first[9],
        responses=[ResponseView(r[10], r[11], r[12]) for r in rows],
        external_id=first[3],
        tags=first[4] or [],
        metadata=first[5] or {},
        label_count=first[6],
        is_complete=first[7],
        created_at=first[8],
    )


def load_item_views(session: Session, items: Sequence[Item]) -> list[ItemView]:
    """Views of `items` (same order) with responses in position order and their labels."""
    if not items:
        return []
    ids = [i.id for i in items]
    prompts = dict(
        session.execute(
            select(Prompt.id, Prompt.text).where(Prompt.id.in_({i.prompt_id for i in items}))
        ).all()
    )
    slots: dict[int, list[ResponseView]] = defaultdict(list)
    for item_id, rid, text, source in session.execute(
        select(ItemResponse.item_id, Response.id, Response.text, Response.source)
        .join(Response, Response.id == ItemResponse.response_id)
        .where(ItemResponse.item_id.in_(ids))
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        slots[item_id].append(ResponseView(rid, text, source))
    labels: dict[int, list[LabelView]] = defaultdict(list)
    for label, name in session.execute(
        select(HumanLabel, User.name)
        .join(User, User.id == HumanLabel.annotator_id)
        .where(HumanLabel.item_id.in_(ids))
        .order_by(HumanLabel.id)
    ).all():
        labels[label.item_id].append(LabelView.of(label, name))
    return [
        ItemView(
            id=i.id,
            project_id=i.project_id,
            kind=i.kind,
            prompt=prompts[i.prompt_id],
            responses=slots[i.id],
            external_id=i.external_id,
            tags=i.tags or [],
            metadata=i.metadata_ or {},
            label_count=i.label_count,
            is_complete=i.is_complete,
            created_at=i.created_at,
            labels=labels[i.id],
        )
        for i in items
    ]


@dataclass(frozen=True)
class ItemFilter:
    """Filters of the item listing."""

    status: str | None = None  # "open" | "complete"
    tag: str | None = None
    min_labels: int | None = None
    external_id: str | None = None


def _filtered(query: Select[Item], flt: ItemFilter) -> Select[Item]:
    if flt.status == "open":
        query = query.where(Item.is_complete.is_(False))
    elif flt.status == "complete":
        query = query.where(Item.is_complete.is_(True))
    if flt.min_labels is not None:
        query = query.where(Item.label_count >= flt.min_labels)
    if flt.external_id is not None:
        query = query.where(Item.external_id == flt.external_id)
    return query


def list_items(
    session: Session, project_id: int, flt: ItemFilter, after_id: int, limit: int
) -> list[ItemView]:
    """A page of a project's items in id order, with their labels."""
    query = _filtered(
        select(Item).where(Item.project_id == project_id, Item.id > after_id), flt
    ).order_by(Item.id)
    if flt.tag is None:
        items = list(session.scalars(query.limit(limit)))
    else:
        # Tags are a JSON list; filter them here so the query stays portable.
        items = []
        for candidate in session.scalars(query.execution_options(yield_per=500)):
            if flt.tag in (candidate.tags or []):
                items.append(candidate)
                if len(items) == limit:
                    break
    return load_item_views(session, items)
