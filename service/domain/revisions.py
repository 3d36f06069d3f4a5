"""Constitution jobs: start one (check it, pick the responses, enqueue), feed the worker its
inputs, and list the chains a job stored.

A job revises responses of its project's items: one work row per response. Its config records
the exact constitution version it runs, so a later edit of the constitution changes nothing
for a job already started.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.db import begin_write
from service.domain.constitutions import get_constitution
from service.domain.jobs import check_model, enqueue_job, get_job, visible_items
from service.domain.projects import get_project
from service.errors import Invalid, NotFound
from service.models import (
    ChainStatus,
    Constitution,
    FeedbackKind,
    Item,
    ItemResponse,
    Job,
    JobKind,
    Principle,
    Project,
    Prompt,
    Response,
    RevisionChain,
    StepOutcome,
)


@dataclass(frozen=True)
class RevisionInput:
    """A response to revise, with its prompt, as the worker reads it."""

    response_id: int
    project_id: int
    prompt_id: int
    prompt: str
    text: str
    source: str


def _constitution(session: Session, config: dict[str, Any]) -> Constitution:
    try:
        return get_constitution(session, config["constitution"], config.get("version"))
    except NotFound as exc:
        field = "config.version" if exc.field == "version" else "config.constitution"
        raise Invalid(exc.message, field) from exc


def _pairs_project(session: Session, project: Project, pairs_project_id: int | None) -> Project:
    """The pairwise project the job's (revision, original) pairs go to."""
    target = project
    if pairs_project_id is not None:
        try:
            target = get_project(session, pairs_project_id)
        except NotFound as exc:
            raise NotFound(exc.message, "config.pairs_project_id") from exc
    if target.kind != FeedbackKind.pairwise:
        hint = "" if pairs_project_id else ": set pairs_project_id to a pairwise project"
        raise Invalid(
            f"constitutional pairs go to a pairwise project; project {target.name!r} is "
            f"{target.kind.value}{hint}",
            "config.pairs_project_id",
        )
    return target


def select_responses(
    session: Session, project: Project, selector: dict[str, Any]
) -> list[tuple[int, int]]:
    """(response id, item id) of the responses a job revises, each response once."""
    query = visible_items(
        select(ItemResponse.response_id, Item.id, Item.tags).join(
            ItemResponse, ItemResponse.item_id == Item.id
        ),
        project.id,
    ).order_by(Item.id, ItemResponse.position)
    if selector.get("item_ids") is not None:
        query = query.where(Item.id.in_(selector["item_ids"]))
    if selector.get("positions") is not None:
        query = query.where(ItemResponse.position.in_(selector["positions"]))
    if not selector.get("include_constitutional"):
        pair_items = select(RevisionChain.id).where(RevisionChain.pair_item_id == Item.id)
        query = query.where(~pair_items.exists())
    if selector.get("skip_revised"):
        revised = select(RevisionChain.id).where(
            RevisionChain.response_id == ItemResponse.response_id,
            RevisionChain.status == ChainStatus.revised,
        )
        query = query.where(~revised.exists())
    tag, limit = selector.get("tag"), selector.get("limit")
    chosen: dict[int, int] = {}
    for response_id, item_id, tags in session.execute(query):
        if tag is not None and tag not in (tags or []):
            continue
        chosen.setdefault(response_id, item_id)
        if limit is not None and len(chosen) >= limit:
            break
    return list(chosen.items())


def start_constitution_job(
    session: Session, *, project_id: int, config: dict[str, Any], created_by_id: int
) -> Job:
    """Create a constitution job and one work row per selected response, in one transaction."""
    check_model(config)
    begin_write(session)
    project = get_project(session, project_id)
    constitution = _constitution(session, config)
    names = [p.name for p in constitution.principles]
    unknown = [n for n in config.get("principles") or [] if n not in names]
    if unknown:
        raise Invalid(
            f"{constitution.name}@{constitution.version} has no principle {unknown[0]!r}; "
            f"it has {', '.join(names)}",
            "config.principles",
        )
    pairs = _pairs_project(session, project, config.get("pairs_project_id"))
    selected = select_responses(session, project, config["responses"])
    if not selected:
        raise Invalid("the selection matches no responses of this project", "config.responses")
    config = {
        **config,
        "version": constitution.version,
        "constitution_id": constitution.id,
        "pairs_project_id": pairs.id,
    }
    return enqueue_job(
        session,
        kind=JobKind.constitution,
        project=project,
        config=config,
        created_by_id=created_by_id,
        payloads=[{"response_id": r, "item_id": i} for r, i in selected],
    )


def load_revision_inputs(session: Session, response_ids: list[int]) -> dict[int, RevisionInput]:
    """The responses (and their prompts) a batch revises, by response id."""
    return {
        rid: RevisionInput(rid, project_id, prompt_id, prompt, text, source)
        for rid, text, source, prompt_id, prompt, project_id in session.execute(
            select(
                Response.id,
                Response.text,
                Response.source,
                Prompt.id,
                Prompt.text,
                Prompt.project_id,
            )
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Response.id.in_(response_ids))
        ).all()
    }


@dataclass(frozen=True)
class StepView:
    """A stored round, for reading."""

    round: int
    principle: str
    critique: str
    critique_outcome: str
    critique_tokens: int
    revision: str | None
    revision_outcome: str | None
    revision_tokens: int


@dataclass(frozen=True)
class ChainView:
    """A stored chain with its texts and rounds, for reading."""

    chain: RevisionChain
    original: str
    final_revision: str | None
    constitution: str
    steps: list[StepView]


def list_chains(
    session: Session,
    job_id: int,
    after_id: int,
    limit: int,
    status: ChainStatus | None = None,
) -> list[ChainView]:
    """A constitution job's chains in id order after a cursor, with every round."""
    job = get_job(session, job_id)
    if job.kind != JobKind.constitution:
        raise NotFound(
            f"job {job_id} is a {job.kind.value} job; only constitution jobs have revisions",
            "job_id",
        )
    query = select(RevisionChain).where(RevisionChain.job_id == job_id, RevisionChain.id > after_id)
    if status is not None:
        query = query.where(RevisionChain.status == status)
    chains = list(
        session.scalars(
            query.order_by(RevisionChain.id).limit(limit).options(selectinload(RevisionChain.steps))
        )
    )
    originals = dict(
        session.execute(
            select(Response.id, Response.text).where(
                Response.id.in_({c.response_id for c in chains})
            )
        ).all()
    )
    principle_ids = {s.principle_id for c in chains for s in c.steps}
    principles = dict(
        session.execute(
            select(Principle.id, Principle.name).where(Principle.id.in_(principle_ids))
        ).all()
    )
    versions: dict[int, str] = defaultdict(str)
    for cid, name, version in session.execute(
        select(Constitution.id, Constitution.name, Constitution.version).where(
            Constitution.id.in_({c.constitution_id for c in chains})
        )
    ):
        versions[cid] = f"{name}@{version}"
    return [
        ChainView(
            chain=c,
            original=originals.get(c.response_id, ""),
            final_revision=next(
                (s.revision for s in reversed(c.steps) if s.revision_outcome == StepOutcome.ok),
                None,
            ),
            constitution=versions[c.constitution_id],
            steps=[
                StepView(
                    round=s.round,
                    principle=principles.get(s.principle_id, ""),
                    critique=s.critique,
                    critique_outcome=s.critique_outcome.value,
                    critique_tokens=s.critique_tokens,
                    revision=s.revision,
                    revision_outcome=s.revision_outcome.value if s.revision_outcome else None,
                    revision_tokens=s.revision_tokens,
                )
                for s in c.steps
            ],
        )
        for c in chains
    ]
