"""Inter-annotator agreement: Cohen's kappa, Krippendorff's alpha, agreement with the majority."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain.votes import Unit, Vote, consensus, label_votes
from service.models import HumanLabel, ItemResponse, LabelOrigin, User


@dataclass
class AnnotatorAgreement:
    """One annotator's votes and how often they match the majority of the others."""

    annotator: str
    n_labels: int
    n_compared: int
    agreement_with_majority: float | None


@dataclass
class PairKappa:
    """Cohen's kappa between two annotators on the units both voted on."""

    annotator_a: str
    annotator_b: str
    n_units: int
    kappa: float | None


@dataclass
class AgreementReport:
    """A project's agreement figures (None where undefined, e.g. a single annotator)."""

    n_labels: int
    n_annotators: int
    n_units: int
    n_units_multi: int
    cohen_kappa: float | None
    krippendorff_alpha: float | None
    mean_majority_agreement: float | None
    annotators: list[AnnotatorAgreement] = field(default_factory=list)
    pairwise_kappa: list[PairKappa] = field(default_factory=list)


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def collect_votes(session: Session, project_id: int) -> tuple[list[Vote], dict[int, str], int]:
    """Votes from every annotator label of a project, annotator names, and the label count."""
    slots: dict[int, list[int]] = defaultdict(list)
    labeled = (
        select(HumanLabel.item_id)
        .where(HumanLabel.project_id == project_id, HumanLabel.origin == LabelOrigin.annotation)
        .distinct()
    )
    for item_id, response_id in session.execute(
        select(ItemResponse.item_id, ItemResponse.response_id)
        .where(ItemResponse.item_id.in_(labeled))
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        slots[item_id].append(response_id)
    votes: list[Vote] = []
    names: dict[int, str] = {}
    n_labels = 0
    for label, name in session.execute(
        select(HumanLabel, User.name)
        .join(User, User.id == HumanLabel.annotator_id)
        .where(HumanLabel.project_id == project_id, HumanLabel.origin == LabelOrigin.annotation)
        .order_by(HumanLabel.id)
    ).all():
        n_labels += 1
        names[label.annotator_id] = name
        votes.extend(
            label_votes(
                label.kind, label.value, label.item_id, slots[label.item_id], label.annotator_id
            )
        )
    return votes, names, n_labels


def category(vote: Vote) -> str:
    """A verdict as a category shared by all units: which side of the pair won, tie, up, down.

    Response ids differ from item to item, so kappa and alpha would see every winner as a
    new category; "lo"/"hi" (the lower / higher response id of the pair) are comparable.
    """
    unit = vote.unit
    if unit.lo != unit.hi and vote.verdict == unit.lo:
        return "lo"
    if unit.lo != unit.hi and vote.verdict == unit.hi:
        return "hi"
    return str(vote.verdict)


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' categories (None where undefined)."""
    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 when both raters are constant
        return _finite(cohen_kappa_score(a, b))


def _alpha(by_unit: dict[Unit, dict[int, str]], annotators: list[int]) -> float | None:
    multi = [u for u, v in by_unit.items() if len(v) >= 2]
    categories = sorted({v for u in multi for v in by_unit[u].values()})
    if not multi or len(categories) < 2:
        return None
    code = {c: n for n, c in enumerate(categories)}
    data = np.full((len(annotators), len(multi)), np.nan)
    row = {a: n for n, a in enumerate(annotators)}
    for col, unit in enumerate(multi):
        for annotator, verdict in by_unit[unit].items():
            data[row[annotator], col] = code[verdict]
    return _finite(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def _leave_one_out(by_unit: dict[Unit, dict[int, str]], annotator: int) -> tuple[int, int]:
    compared = agreed = 0
    for verdicts in by_unit.values():
        if annotator not in verdicts or len(verdicts) < 2:
            continue
        others = [Vote(Unit(0, 0, 0), a, v) for a, v in verdicts.items() if a != annotator]
        majority = consensus(others).verdict
        if majority is None:
            continue
        compared += 1
        agreed += verdicts[annotator] == majority
    return compared, agreed


def agreement_report(session: Session, project_id: int) -> AgreementReport:
    """Agreement among a project's annotators, over pair (or single-response) units."""
    votes, names, n_labels = collect_votes(session, project_id)
    by_unit: dict[Unit, dict[int, str]] = defaultdict(dict)
    for vote in votes:
        by_unit[vote.unit][vote.annotator_id] = category(vote)
    annotators = sorted(names)
    pair_kappas = []
    for a, b in combinations(annotators, 2):
        shared = [u for u, v in by_unit.items() if a in v and b in v]
        kappa = cohen_kappa([by_unit[u][a] for u in shared], [by_unit[u][b] for u in shared])
        pair_kappas.append(PairKappa(names[a], names[b], len(shared), kappa))
    per_annotator = []
    for a in annotators:
        compared, agreed = _leave_one_out(by_unit, a)
        per_annotator.append(
            AnnotatorAgreement(
                annotator=names[a],
                n_labels=sum(1 for v in by_unit.values() if a in v),
                n_compared=compared,
                agreement_with_majority=agreed / compared if compared else None,
            )
        )
    multi = [v for v in by_unit.values() if len(v) >= 2]
    shares = [consensus([Vote(Unit(0, 0, 0), a, x) for a, x in v.items()]).agreement for v in multi]
    return AgreementReport(
        n_labels=n_labels,
        n_annotators=len(annotators),
        n_units=len(by_unit),
        n_units_multi=len(multi),
        cohen_kappa=pair_kappas[0].kappa if len(annotators) == 2 else None,
        krippendorff_alpha=_alpha(by_unit, annotators),
        mean_majority_agreement=float(np.mean(shares)) if shares else None,
        annotators=per_annotator,
        pairwise_kappa=pair_kappas,
    )
