"""Judge quality reports: AI-human agreement, position bias, position consistency, ties.

Per judge job. Human verdicts are the majority of the human labels of a unit (an imported
dataset's own preference counts until annotators label the item, as in exports).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain.agreement import category, cohen_kappa
from service.domain.votes import TIE, Unit, Vote, consensus, label_votes
from service.models import (
    AIJudgment,
    AILabel,
    HumanLabel,
    Item,
    ItemResponse,
    Job,
    LabelOrigin,
)


@dataclass
class HumanAgreement:
    """The judge against the human majority, on units that have both."""

    n_units: int
    accuracy: float | None
    cohen_kappa: float | None


@dataclass
class JudgeReport:
    """One judge job's quality figures (None where there is nothing to measure)."""

    job_id: int
    judge_model: str
    judge_backend: str
    template: str
    n_items: int
    n_judgments: int
    first_position_win_rate: float | None  # before debiasing; 0.5 is unbiased
    mean_p_first: float | None
    position_consistency_rate: float | None
    tie_rate: float | None
    human_agreement: HumanAgreement


def _slots(session: Session, project_id: int) -> dict[int, list[int]]:
    """Each item's response ids in position order, for the whole project."""
    slots: dict[int, list[int]] = defaultdict(list)
    for item_id, response_id in session.execute(
        select(ItemResponse.item_id, ItemResponse.response_id)
        .join(Item, Item.id == ItemResponse.item_id)
        .where(Item.project_id == project_id)
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        slots[item_id].append(response_id)
    return slots


def human_verdicts(
    session: Session, project_id: int, slots: dict[int, list[int]]
) -> dict[Unit, Vote]:
    """The human majority verdict of each unit that has one."""
    labels = session.scalars(select(HumanLabel).where(HumanLabel.project_id == project_id)).all()
    annotated = {lb.item_id for lb in labels if lb.origin == LabelOrigin.annotation}
    by_unit: dict[Unit, list[Vote]] = defaultdict(list)
    for lb in labels:
        if lb.origin == LabelOrigin.imported and lb.item_id in annotated:
            continue
        for vote in label_votes(lb.kind, lb.value, lb.item_id, slots[lb.item_id], lb.annotator_id):
            by_unit[vote.unit].append(vote)
    out = {}
    for unit, votes in by_unit.items():
        agreed = consensus(votes)
        if agreed.verdict is not None:
            out[unit] = Vote(unit, 0, agreed.verdict)
    return out


def _order_figures(
    session: Session, job_id: int
) -> tuple[int, float | None, float | None, float | None]:
    """Judgment count, first-position win rate, mean P(first), pair consistency rate."""
    rows = session.execute(
        select(
            AIJudgment.item_id,
            AIJudgment.first_position,
            AIJudgment.second_position,
            AIJudgment.p_first,
        ).where(AIJudgment.job_id == job_id)
    ).all()
    pair_rows = [r for r in rows if r.second_position >= 0]
    p = {(r.item_id, r.first_position, r.second_position): r.p_first for r in pair_rows}
    consistent = [
        (fwd > 0.5) == (p[(item, j, i)] < 0.5)
        for (item, i, j), fwd in p.items()
        if i < j and (item, j, i) in p
    ]
    n = len(pair_rows)
    return (
        len(rows),
        sum(r.p_first > 0.5 for r in pair_rows) / n if n else None,
        sum(r.p_first for r in pair_rows) / n if n else None,
        sum(consistent) / len(consistent) if consistent else None,
    )


def judge_reports(
    session: Session, project_id: int, job_id: int | None = None
) -> list[JudgeReport]:
    """A report for each judge job of the project (or the one asked for)."""
    query = select(Job).where(Job.project_id == project_id, Job.kind == "judge")
    if job_id is not None:
        query = query.where(Job.id == job_id)
    slots = _slots(session, project_id)
    humans = human_verdicts(session, project_id, slots)
    reports = []
    for job in session.scalars(query.order_by(Job.id)):
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job.id)).all()
        ai_votes = [
            v
            for lb in labels
            for v in label_votes(lb.kind, lb.value, lb.item_id, slots[lb.item_id], -job.id)
        ]
        pair_votes = [v for v in ai_votes if v.unit.lo != v.unit.hi]
        both = [(humans[v.unit], v) for v in ai_votes if v.unit in humans]
        n_judgments, first_wins, mean_p, consistency = _order_figures(session, job.id)
        first = labels[0] if labels else None
        reports.append(
            JudgeReport(
                job_id=job.id,
                judge_model=first.judge_model if first else str(job.config.get("model")),
                judge_backend=first.judge_backend if first else str(job.config.get("backend")),
                template=first.template if first else str(job.config.get("template")),
                n_items=len(labels),
                n_judgments=n_judgments,
                first_position_win_rate=first_wins,
                mean_p_first=mean_p,
                position_consistency_rate=consistency,
                tie_rate=(
                    sum(v.verdict == TIE for v in pair_votes) / len(pair_votes)
                    if pair_votes
                    else None
                ),
                human_agreement=HumanAgreement(
                    n_units=len(both),
                    accuracy=sum(h.verdict == a.verdict for h, a in both) / len(both)
                    if both
                    else None,
                    cohen_kappa=cohen_kappa(
                        [category(h) for h, _ in both], [category(a) for _, a in both]
                    ),
                ),
            )
        )
    return reports
