"""Labels as votes on units: a pair of responses (who wins, or tie), or one response (up/down).

Pairwise labels give one pair, a ranking of K gives its C(K,2) pairs, binary labels one unit.
Agreement and export both read labels through these votes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from service.models import FeedbackKind

TIE = "tie"


@dataclass(frozen=True)
class Unit:
    """What a vote is about: (item, lo, hi) response ids; lo == hi for a binary unit."""

    item_id: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Vote:
    """One annotator's verdict on a unit: the winning response id, TIE, or 'up'/'down'."""

    unit: Unit
    annotator_id: int
    verdict: int | str
    strength: int | None = None
    source: str = "human"  # or "ai"
    confidence: float | None = None  # an AI judge's confidence in its verdict
    label_id: int = 0  # the label (human or AI, per `source`) that cast it


def _pair_vote(
    item_id: int, winner: int | None, a: int, b: int, annotator_id: int, strength: int | None
) -> Vote:
    lo, hi = min(a, b), max(a, b)
    return Vote(Unit(item_id, lo, hi), annotator_id, TIE if winner is None else winner, strength)


def label_votes(
    kind: FeedbackKind,
    value: dict[str, Any],
    item_id: int,
    response_ids: list[int],
    annotator_id: int,
) -> list[Vote]:
    """The votes a stored label casts; `response_ids` are the item's responses in position order."""
    if kind == FeedbackKind.binary:
        rid = response_ids[0]
        return [Vote(Unit(item_id, rid, rid), annotator_id, value["rating"])]
    if kind == FeedbackKind.pairwise:
        a, b = response_ids[0], response_ids[1]
        choice = value["choice"]
        winner = a if choice == "a" else b if choice == "b" else None
        return [_pair_vote(item_id, winner, a, b, annotator_id, value.get("strength"))]
    rank = {rid: n for n, group in enumerate(value["ranking"]) for rid in group}
    votes = []
    for x, y in combinations(sorted(rank), 2):
        winner = None if rank[x] == rank[y] else (x if rank[x] < rank[y] else y)
        votes.append(_pair_vote(item_id, winner, x, y, annotator_id, None))
    return votes


@dataclass(frozen=True)
class Consensus:
    """The majority verdict on a unit and how strongly the votes agree."""

    verdict: int | str | None  # None when the top verdicts are tied in count
    agreement: float  # share of votes for the majority verdict
    n_votes: int


def consensus(votes: list[Vote]) -> Consensus:
    """Majority verdict of a unit's votes (None on a count tie)."""
    counts = Counter(v.verdict for v in votes).most_common()
    top_verdict, top = counts[0]
    if len(counts) > 1 and counts[1][1] == top:
        return Consensus(None, top / len(votes), len(votes))
    return Consensus(top_verdict, top / len(votes), len(votes))
