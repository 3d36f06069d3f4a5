"""AI verdicts: pairwise, listwise and binary items, read from verdict-token log-probs.

Every pair is shown in both orders (unless configured otherwise). In each order the judge
prompt ends where the verdict goes, and one forward step gives the log-probs of "A" and "B"
(or "Yes" and "No"); normalised over the two, that is P(first shown wins). Debiased,
P(A>B) = mean(P_AB(first wins), 1 - P_BA(first wins)): in the swapped order B is first, so
its first-position win counts against A. Listwise items get every pair in both orders and a
Bradley-Terry fit of the debiased pair probabilities; binary items get P(Yes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations, pairwise
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from service.domain.judgments import ItemVerdict, JudgeItem, OrderVerdict
from service.models import FeedbackKind
from workers.backends.base import Backend
from workers.prompts import JudgeTemplate, TemplateError, render

PAIR_VERDICTS = ("A", "B")
BINARY_VERDICTS = ("Yes", "No")
COT_VERDICT_CUE = "\nVerdict:"


@dataclass(frozen=True)
class JudgeSettings:
    """How a job judges."""

    template: JudgeTemplate
    orders: Literal["both", "one"] = "both"
    chain_of_thought: bool = False
    cot_max_tokens: int = 256
    tie_band: float = 0.05


@dataclass(frozen=True)
class _Request:
    """One prompt for the judge: an item shown in one order."""

    unit: int  # index into the batch
    first: int
    second: int  # -1 for a binary item
    text: str


def verdict_token_ids(backend: Backend, context: str, labels: tuple[str, str]) -> list[int]:
    """The token each verdict label starts with when it follows `context`."""
    tok = backend.tokenizer
    base = tok.encode(context, add_special_tokens=False)
    ids = []
    for label in labels:
        full = tok.encode(context + label, add_special_tokens=False)
        own = full[len(base)] if full[: len(base)] == base and len(full) > len(base) else None
        ids.append(own if own is not None else tok.encode(label, add_special_tokens=False)[0])
    if ids[0] == ids[1]:
        raise TemplateError(f"verdicts {labels} start with the same token for this tokenizer")
    return ids


def _p_first(logprobs: list[float]) -> float:
    """P(first verdict), normalised over the two verdict tokens."""
    a, b = logprobs
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"the backend returned non-finite verdict log-probs {logprobs}")
    return float(expit(a - b))


class Judge:
    """Turns a batch of items into verdicts with one backend and one template."""

    def __init__(self, backend: Backend, settings: JudgeSettings) -> None:
        self.backend = backend
        self.settings = settings

    def requests(self, items: list[JudgeItem]) -> list[_Request]:
        """Every prompt the batch needs, the two orders of a pair side by side."""
        t, out = self.settings.template, []
        for n, item in enumerate(items):
            if item.kind == FeedbackKind.binary:
                text = t.binary.format(prompt=item.prompt, response=item.responses[0])
                out.append(_Request(n, 0, -1, text))
                continue
            for i, j in combinations(range(len(item.responses)), 2):
                orders = [(i, j), (j, i)] if self.settings.orders == "both" else [(i, j)]
                for first, second in orders:
                    text = t.pairwise.format(
                        prompt=item.prompt,
                        first=item.responses[first],
                        second=item.responses[second],
                    )
                    out.append(_Request(n, first, second, text))
        return out

    def judge(self, units: list[tuple[int, JudgeItem]]) -> list[ItemVerdict]:
        """Verdicts for (work unit id, item) pairs, all prompts in one engine batch."""
        items = [item for _, item in units]
        requests = self.requests(items)
        tok = self.backend.tokenizer
        texts = [
            render(tok, self.settings.template, r.text, cot=self.settings.chain_of_thought)
            for r in requests
        ]
        rationales: list[str | None] = [None] * len(texts)
        if self.settings.chain_of_thought:
            prompts = [tok.encode(t, add_special_tokens=False) for t in texts]
            generated = self.backend.generate(prompts, self.settings.cot_max_tokens)
            rationales = [g.text.split(COT_VERDICT_CUE.strip())[0].strip() for g in generated]
            texts = [f"{t}{r}{COT_VERDICT_CUE}" for t, r in zip(texts, rationales, strict=True)]
        verdicts = [BINARY_VERDICTS if r.second < 0 else PAIR_VERDICTS for r in requests]
        if self.settings.chain_of_thought:  # after "Verdict:" the answer comes as " A"
            verdicts = [(f" {a}", f" {b}") for a, b in verdicts]
        by_labels: dict[tuple[str, str], list[int]] = {}
        for n, labels in enumerate(verdicts):
            by_labels.setdefault(labels, []).append(n)
        logprobs: list[list[float]] = [[]] * len(texts)
        for labels, idx in by_labels.items():
            choice = verdict_token_ids(self.backend, texts[idx[0]], labels)
            prompts = [tok.encode(texts[n], add_special_tokens=False) for n in idx]
            for n, lp in zip(idx, self.backend.choice_logprobs(prompts, choice), strict=True):
                logprobs[n] = lp
        orders: list[list[OrderVerdict]] = [[] for _ in items]
        for n, r in enumerate(requests):
            labels = verdicts[n]
            orders[r.unit].append(
                OrderVerdict(
                    first_position=r.first,
                    second_position=r.second,
                    p_first=_p_first(logprobs[n]),
                    logprobs=dict(zip((x.strip() for x in labels), logprobs[n], strict=True)),
                    rationale=rationales[n],
                )
            )
        return [
            self._aggregate(unit_id, item, orders[n]) for n, (unit_id, item) in enumerate(units)
        ]

    def _aggregate(self, unit_id: int, item: JudgeItem, orders: list[OrderVerdict]) -> ItemVerdict:
        band = self.settings.tie_band
        if item.kind == FeedbackKind.binary:
            p_yes = orders[0].p_first
            return ItemVerdict(
                unit_id,
                item.item_id,
                item.kind,
                orders,
                value={"rating": "up" if p_yes >= 0.5 else "down"},
                scores={"p_yes": p_yes},
                confidence=abs(p_yes - 0.5) * 2,
                position_consistent=None,
            )
        pairs = pair_probabilities(orders)
        if item.kind == FeedbackKind.pairwise:
            p, consistent = pairs[(0, 1)]
            choice = "tie" if abs(p - 0.5) <= band else ("a" if p > 0.5 else "b")
            fwd = {(o.first_position, o.second_position): o.p_first for o in orders}
            return ItemVerdict(
                unit_id,
                item.item_id,
                item.kind,
                orders,
                value={"choice": choice},
                scores={"p_a_over_b": p, "p_first_ab": fwd[(0, 1)], "p_first_ba": fwd.get((1, 0))},
                confidence=abs(p - 0.5) * 2,
                position_consistent=consistent,
            )
        k = len(item.responses)
        scores = bradley_terry(k, {ij: p for ij, (p, _) in pairs.items()})
        ranking = tie_groups(scores, band)
        flags = [c for _, c in pairs.values()]
        return ItemVerdict(
            unit_id,
            item.item_id,
            item.kind,
            orders,
            value={"ranking": [[item.response_ids[i] for i in group] for group in ranking]},
            scores={
                "bt_scores": scores,
                "pairs": [[i, j, p, c] for (i, j), (p, c) in sorted(pairs.items())],
            },
            confidence=float(np.mean([abs(p - 0.5) * 2 for p, _ in pairs.values()])),
            position_consistent=None if None in flags else all(f for f in flags if f is not None),
        )


def pair_probabilities(
    orders: list[OrderVerdict],
) -> dict[tuple[int, int], tuple[float, bool | None]]:
    """Debiased P(i beats j) for each pair i < j, and whether its two orders agree."""
    seen = {(o.first_position, o.second_position): o.p_first for o in orders}
    out: dict[tuple[int, int], tuple[float, bool | None]] = {}
    for (first, second), p in seen.items():
        i, j = min(first, second), max(first, second)
        if (i, j) in out:
            continue
        forward = seen.get((i, j))
        swapped = seen.get((j, i))
        if forward is not None and swapped is not None:
            # In the swapped order j is shown first: its first-position win counts against i.
            out[(i, j)] = ((forward + 1 - swapped) / 2, (forward > 0.5) == (swapped < 0.5))
        elif forward is not None:
            out[(i, j)] = (forward, None)
        else:
            out[(i, j)] = (1 - p, None)
    return out


def bradley_terry(k: int, p_win: dict[tuple[int, int], float], l2: float = 1e-3) -> list[float]:
    """Bradley-Terry scores from soft pairwise outcomes P(i beats j), centred at zero."""
    pairs = list(p_win.items())

    def loss(s: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = l2 * float(s @ s), 2 * l2 * s
        for (i, j), p in pairs:
            d = s[i] - s[j]
            total += -(p * -np.logaddexp(0, -d) + (1 - p) * -np.logaddexp(0, d))
            g = 1 / (1 + np.exp(-d)) - p
            grad[i] += g
            grad[j] -= g
        return total, grad

    result = minimize(
        loss, np.zeros(k), jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15}
    )
    scores = result.x - result.x.mean()
    return [float(x) for x in scores]


def tie_groups(scores: list[float], band: float) -> list[list[int]]:
    """Positions best first; neighbours whose BT win probability is within `band` of 0.5 tie."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    groups = [[order[0]]]
    for prev, cur in pairwise(order):
        p = 1 / (1 + math.exp(-(scores[prev] - scores[cur])))
        if abs(p - 0.5) <= band:
            groups[-1].append(cur)
        else:
            groups.append([cur])
    return groups
