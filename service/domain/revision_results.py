"""Storing a constitution batch with its work ack: chains, rounds, and constitutional pairs.

Everything of a batch goes in one transaction, only for the work rows the worker still
holds, under unique constraints (one chain per job and response; one pair item per job and
response, by external id): a batch replayed after a crash or a lost lease writes nothing
twice. A usable final revision becomes a Response (`revision_of` the original) and, unless
the judge was asked and did not confirm it, a pairwise item (original, revision) in the pairs
project with an AI label saying the revision is better, tagged `constitutional`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import queue
from service.db import begin_write, dialect_insert, utcnow
from service.domain.revisions import RevisionInput
from service.models import (
    AILabel,
    ChainStatus,
    FeedbackKind,
    Item,
    ItemResponse,
    Job,
    Prompt,
    Response,
    RevisionChain,
    RevisionStep,
    StepOutcome,
)

CONSTITUTIONAL_TAG = "constitutional"


@dataclass(frozen=True)
class StepResult:
    """One round as the worker ran it."""

    round: int
    principle_id: int
    critique: str
    critique_outcome: StepOutcome
    critique_tokens: int
    revision: str | None = None
    revision_outcome: StepOutcome | None = None
    revision_tokens: int = 0


@dataclass(frozen=True)
class ChainResult:
    """A response's rounds, its final usable revision, and the judge's view of it if asked."""

    unit_id: int
    response_id: int
    steps: list[StepResult]
    final_text: str | None
    p_confirmed: float | None = None  # P(revision better than the original)
    position_consistent: bool | None = None
    confirmed: bool | None = None  # None: the judge was not asked

    @property
    def status(self) -> ChainStatus:
        """revised; unrevised (no usable revision); rejected (the judge kept the original)."""
        if self.final_text is None:
            return ChainStatus.unrevised
        return ChainStatus.rejected if self.confirmed is False else ChainStatus.revised


@dataclass(frozen=True)
class ReviserIdentity:
    """Who revised, with what: recorded on every chain and pair."""

    model: str
    backend: str
    constitution_id: int
    constitution: str  # name@version
    generation: dict[str, Any]


def _prompt_in(session: Session, project_id: int, text: str) -> int:
    """The id of the prompt with this text in the project, adding it if missing."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    session.execute(
        dialect_insert(session)(Prompt)
        .values(project_id=project_id, text=text, text_sha256=sha, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["project_id", "text_sha256"])
    )
    return session.scalars(
        select(Prompt.id).where(Prompt.project_id == project_id, Prompt.text_sha256 == sha)
    ).one()


def _add_pair(
    session: Session,
    job: Job,
    pairs_project_id: int,
    source: RevisionInput,
    chain: ChainResult,
    identity: ReviserIdentity,
) -> tuple[int, int]:
    """The revision as a Response and the (original, revision) pair item with its AI label;
    returns (pair item id, revision response id)."""
    assert chain.final_text is not None
    prompt_id, original_id = source.prompt_id, source.response_id
    if pairs_project_id != source.project_id:  # responses belong to a project's prompts
        prompt_id = _prompt_in(session, pairs_project_id, source.prompt)
        copy = Response(prompt_id=prompt_id, text=source.text, source=source.source)
        session.add(copy)
        session.flush()
        original_id = copy.id
    revision = Response(
        prompt_id=prompt_id,
        text=chain.final_text,
        source=f"revision:{identity.model}"[:200],  # the column's width; chains keep the name
        revision_of_id=original_id,  # in the pairs project (the chain names the source one)
    )
    session.add(revision)
    session.flush()
    # A stable coin flip puts the revision first or second: no position bias for reviewers.
    coin = hashlib.sha256(f"{job.id}:{source.response_id}".encode()).digest()[0] % 2
    slots = [revision.id, original_id] if coin else [original_id, revision.id]
    item = Item(
        project_id=pairs_project_id,
        prompt_id=prompt_id,
        kind=FeedbackKind.pairwise,
        external_id=f"constitution:{job.id}:{source.response_id}",
        tags=[CONSTITUTIONAL_TAG],
        metadata_={
            "constitution": identity.constitution,
            "job_id": job.id,
            "original_response_id": source.response_id,
            "revision_response_id": revision.id,
            "rounds": sum(s.revision_outcome == StepOutcome.ok for s in chain.steps),
        },
        label_count=0,
        is_complete=False,
    )
    session.add(item)
    session.flush()
    session.add_all(
        ItemResponse(item_id=item.id, position=n, response_id=r) for n, r in enumerate(slots)
    )
    p = chain.p_confirmed
    session.add(
        AILabel(
            job_id=job.id,
            project_id=pairs_project_id,
            item_id=item.id,
            kind=FeedbackKind.pairwise,
            value={"choice": "a" if coin else "b"},
            scores={"p_revision_better": p},
            confidence=None if p is None else abs(2 * p - 1),
            position_consistent=chain.position_consistent,
            judge_model=identity.model,
            judge_backend=identity.backend,
            template=f"constitution:{identity.constitution}",
        )
    )
    return item.id, revision.id


def _store_chain(
    session: Session,
    job: Job,
    pairs_project_id: int,
    source: RevisionInput | None,
    chain: ChainResult,
    identity: ReviserIdentity,
) -> None:
    pair_item_id = final_id = None
    if source is not None and chain.status == ChainStatus.revised:
        pair_item_id, final_id = _add_pair(session, job, pairs_project_id, source, chain, identity)
    row = RevisionChain(
        job_id=job.id,
        response_id=chain.response_id,
        constitution_id=identity.constitution_id,
        status=chain.status,
        final_response_id=final_id,
        pair_item_id=pair_item_id,
        p_confirmed=chain.p_confirmed,
        model=identity.model,
        backend=identity.backend,
        generation=identity.generation,
        steps=[
            RevisionStep(
                round=s.round,
                principle_id=s.principle_id,
                critique=s.critique,
                critique_outcome=s.critique_outcome,
                critique_tokens=s.critique_tokens,
                revision=s.revision,
                revision_outcome=s.revision_outcome,
                revision_tokens=s.revision_tokens,
            )
            for s in chain.steps
        ],
    )
    session.add(row)


def _counts(chains: list[ChainResult]) -> dict[str, int]:
    counts = {
        "responses": len(chains),
        "generated_tokens": sum(
            s.critique_tokens + s.revision_tokens for c in chains for s in c.steps
        ),
    }
    for chain in chains:
        counts[chain.status.value] = counts.get(chain.status.value, 0) + 1
        for step in chain.steps:
            for outcome in (step.critique_outcome, step.revision_outcome):
                if outcome not in (None, StepOutcome.ok):
                    key = f"outcome_{outcome.value}"
                    counts[key] = counts.get(key, 0) + 1
    return counts


def record_revision_batch(
    session: Session,
    worker_id: str,
    job_id: int,
    identity: ReviserIdentity,
    sources: dict[int, RevisionInput],
    chains: list[ChainResult],
    unit_ids: list[int],
) -> int:
    """Store a batch's chains (and pairs) and ack its work rows (`unit_ids`: the whole batch,
    also rows whose response is gone), for the rows the worker still holds."""
    begin_write(session)
    job = session.get_one(Job, job_id)
    held = queue.complete(session, worker_id, unit_ids)
    kept = [c for c in chains if c.unit_id in held]
    already = set(
        session.scalars(
            select(RevisionChain.response_id).where(
                RevisionChain.job_id == job_id,
                RevisionChain.response_id.in_([c.response_id for c in kept]),
            )
        )
    )
    pairs_project_id = int(job.config.get("pairs_project_id") or job.project_id or 0)
    kept = [c for c in kept if c.response_id not in already]
    for chain in kept:
        _store_chain(
            session, job, pairs_project_id, sources.get(chain.response_id), chain, identity
        )
    session.flush()
    settled = queue.settle_job(session, job_id)
    if settled is not None and kept:
        totals = dict(settled.metrics or {})
        for key, n in _counts(kept).items():
            totals[key] = int(totals.get(key, 0)) + n
        settled.metrics = totals
    session.commit()
    return len(kept)
