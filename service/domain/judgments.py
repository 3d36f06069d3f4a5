"""AI judgments: the items a judge worker reads, and storing its verdicts with the work ack.

A batch's verdicts, their AI labels and the completion of its work rows go in one
transaction, only for the rows the worker still holds, under unique constraints: a batch
replayed after a crash or a lost lease writes nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import queue
from service.db import begin_write, dialect_insert
from service.models import (
    AIJudgment,
    AILabel,
    FeedbackKind,
    Item,
    ItemResponse,
    Job,
    Prompt,
    Response,
)


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees of an item: its prompt and its responses in position order."""

    item_id: int
    kind: FeedbackKind
    prompt: str
    responses: list[str]
    response_ids: list[int]


@dataclass(frozen=True)
class OrderVerdict:
    """The judge's reading of one order: P(first shown wins), or P(Yes) for one response."""

    first_position: int
    second_position: int  # -1 for a binary item
    p_first: float
    logprobs: dict[str, float]
    rationale: str | None = None


@dataclass(frozen=True)
class ItemVerdict:
    """Everything a judge concluded about one item (one work row)."""

    unit_id: int
    item_id: int
    kind: FeedbackKind
    orders: list[OrderVerdict]
    value: dict[str, Any]
    scores: dict[str, Any]
    confidence: float
    position_consistent: bool | None


@dataclass(frozen=True)
class JudgeIdentity:
    """Who judged: model, backend, and template with its version."""

    model: str
    backend: str
    template: str


def load_judge_items(session: Session, item_ids: list[int]) -> dict[int, JudgeItem]:
    """The items' prompts and responses, by item id."""
    texts: dict[int, list[str]] = defaultdict(list)
    ids: dict[int, list[int]] = defaultdict(list)
    for item_id, response_id, text in session.execute(
        select(ItemResponse.item_id, Response.id, Response.text)
        .join(Response, Response.id == ItemResponse.response_id)
        .where(ItemResponse.item_id.in_(item_ids))
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        texts[item_id].append(text)
        ids[item_id].append(response_id)
    return {
        item_id: JudgeItem(item_id, FeedbackKind(kind), prompt, texts[item_id], ids[item_id])
        for item_id, kind, prompt in session.execute(
            select(Item.id, Item.kind, Prompt.text)
            .join(Prompt, Prompt.id == Item.prompt_id)
            .where(Item.id.in_(item_ids))
        ).all()
    }


def job_config(session: Session, job_id: int) -> tuple[Job, dict[str, Any]]:
    """The job and its configuration, as the worker runs it."""
    job = session.get_one(Job, job_id)
    return job, dict(job.config)


def record_judge_batch(
    session: Session,
    worker_id: str,
    job_id: int,
    identity: JudgeIdentity,
    verdicts: list[ItemVerdict],
    unit_ids: list[int],
) -> int:
    """Store a batch's verdicts and ack its work rows (`unit_ids`: all of the batch, also rows
    whose item is gone), for the rows the worker still holds."""
    begin_write(session)
    job = session.get_one(Job, job_id)
    held = queue.complete(session, worker_id, unit_ids)
    kept = [v for v in verdicts if v.unit_id in held]
    insert = dialect_insert(session)
    judgments = [
        {
            "job_id": job_id,
            "item_id": v.item_id,
            "first_position": o.first_position,
            "second_position": o.second_position,
            "p_first": o.p_first,
            "logprobs": o.logprobs,
            "rationale": o.rationale,
        }
        for v in kept
        for o in v.orders
    ]
    labels = [
        {
            "job_id": job_id,
            "project_id": job.project_id,
            "item_id": v.item_id,
            "kind": v.kind,
            "value": v.value,
            "scores": v.scores,
            "confidence": v.confidence,
            "position_consistent": v.position_consistent,
            "judge_model": identity.model,
            "judge_backend": identity.backend,
            "template": identity.template,
        }
        for v in kept
    ]
    conn = session.connection()
    if judgments:
        conn.execute(insert(AIJudgment).on_conflict_do_nothing(), judgments)
    if labels:
        conn.execute(insert(AILabel).on_conflict_do_nothing(), labels)
    queue.settle_job(session, job_id)
    session.commit()
    return len(kept)
