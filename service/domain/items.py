"""Reading items: their prompt, responses in order, and labels, in a few queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.models import HumanLabel, Item, ItemResponse, Prompt, Response, User


@dataclass
class ItemView:
    """An item with what is needed to show or export it."""

    item: Item
    prompt: str
    responses: list[Response]
    labels: list[tuple[HumanLabel, str]] = field(default_factory=list)


def load_item_views(
    session: Session, items: Sequence[Item], *, with_labels: bool = False
) -> list[ItemView]:
    """Views of `items` (same order), with responses in position order and optionally labels."""
    if not items:
        return []
    ids = [i.id for i in items]
    prompts = dict(
        session.execute(
            select(Prompt.id, Prompt.text).where(Prompt.id.in_({i.prompt_id for i in items}))
        ).all()
    )
    slots: dict[int, list[Response]] = defaultdict(list)
    for item_id, response in session.execute(
        select(ItemResponse.item_id, Response)
        .join(Response, Response.id == ItemResponse.response_id)
        .where(ItemResponse.item_id.in_(ids))
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        slots[item_id].append(response)
    labels: dict[int, list[tuple[HumanLabel, str]]] = defaultdict(list)
    if with_labels:
        for label, name in session.execute(
            select(HumanLabel, User.name)
            .join(User, User.id == HumanLabel.annotator_id)
            .where(HumanLabel.item_id.in_(ids))
            .order_by(HumanLabel.id)
        ).all():
            labels[label.item_id].append((label, name))
    return [
        ItemView(item=i, prompt=prompts[i.prompt_id], responses=slots[i.id], labels=labels[i.id])
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
        for batch_item in session.scalars(query.execution_options(yield_per=500)):
            if flt.tag in (batch_item.tags or []):
                items.append(batch_item)
                if len(items) == limit:
                    break
    return load_item_views(session, items, with_labels=True)
