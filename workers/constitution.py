"""Constitutional AI: critique -> revision chains, every chain of a batch in one engine call
per step, and the optional judge confirmation of each final revision (the RLAIF step).

For each response a chain samples principles (seeded by the job's seed and the response id,
so a retried batch samples the same ones, without repeats while any is left) and runs up to
`rounds` rounds. A round shows the model the conversation and the reply under review, asks
for a critique against the round's principle, then, after that critique, for a revision.
Every generation is checked (workers/generation_checks.py): an empty, looping or cut-off
critique or revision, or a revision identical to its input, ends the chain and is recorded
as such; the latest usable revision is the chain's final one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from service.domain.judgments import JudgeItem
from service.domain.revision_results import ChainResult, StepResult
from service.domain.revisions import RevisionInput
from service.models import FeedbackKind, StepOutcome
from workers.backends.base import GREEDY, Backend, Completion, Sampling
from workers.generation_checks import clean_generation, outcome_of
from workers.judge import Judge, JudgeSettings
from workers.prompts.revision import RevisionTemplate, dialogue_messages, load_revision_template

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class PrincipleSpec:
    """A principle of the constitution version the job runs."""

    id: int
    name: str
    critique_request: str
    revision_request: str


@dataclass(frozen=True)
class ReviseSettings:
    """How a job revises: principles to sample from, rounds, seed and generation settings."""

    principles: tuple[PrincipleSpec, ...]
    rounds: int = 2
    seed: int = 0
    max_tokens: int = 256
    sampling: Sampling = GREEDY
    template: RevisionTemplate = field(default_factory=load_revision_template)

    def record(self) -> dict[str, Any]:
        """The settings as stored with every chain."""
        return {
            "rounds": self.rounds,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "template": self.template.identity,
            "principles": [p.name for p in self.principles],
        }


@dataclass
class _Chain:
    unit_id: int
    source: RevisionInput
    order: list[PrincipleSpec]
    current: str
    steps: list[StepResult] = field(default_factory=list)
    final: str | None = None
    active: bool = True


def principle_order(settings: ReviseSettings, response_id: int) -> list[PrincipleSpec]:
    """The principles of a response's rounds: seeded shuffles, no repeat within a shuffle."""
    rng = random.Random(f"{settings.seed}:{response_id}")
    order: list[PrincipleSpec] = []
    while len(order) < settings.rounds:
        batch = list(settings.principles)
        rng.shuffle(batch)
        order.extend(batch)
    return order[: settings.rounds]


class Reviser:
    """Runs the critique -> revision chains of a batch on one backend."""

    def __init__(self, backend: Backend, settings: ReviseSettings) -> None:
        self.backend = backend
        self.settings = settings

    def _generate(self, conversations: list[Messages], round_: int) -> list[Completion | None]:
        """A completion per conversation, all in one engine call; None for a conversation
        that, with `max_tokens` more, would not fit the model's context (it is not sent, so
        that one long dialogue cannot fail the batch)."""
        tok = self.backend.tokenizer
        prompts = []
        for messages in conversations:
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompts.append(tok.encode(str(text), add_special_tokens=False))
        limit = self.backend.max_context
        fits = [
            n
            for n, p in enumerate(prompts)
            if limit is None or len(p) + self.settings.max_tokens <= limit
        ]
        sampling = self.settings.sampling
        if sampling.seed is not None:
            sampling = replace(sampling, seed=sampling.seed + round_)
        out: list[Completion | None] = [None] * len(prompts)
        if fits:
            done = self.backend.generate(
                [prompts[n] for n in fits], self.settings.max_tokens, sampling
            )
            for n, completion in zip(fits, done, strict=True):
                out[n] = completion
        return out

    def _conversation(self, chain: _Chain) -> Messages:
        return [
            *dialogue_messages(chain.source.prompt),
            {"role": "assistant", "content": chain.current},
        ]

    def revise(
        self,
        units: list[tuple[int, RevisionInput]],
        should_stop: Callable[[], bool] | None = None,
    ) -> list[ChainResult]:
        """Chains for (work unit id, response) pairs; `should_stop` is asked between steps."""
        chains = [
            _Chain(
                unit,
                source,
                principle_order(self.settings, source.response_id),
                source.text.strip(),
            )
            for unit, source in units
        ]
        stop = should_stop or (lambda: False)
        for round_ in range(1, self.settings.rounds + 1):
            active = [c for c in chains if c.active]
            if not active or stop():
                break
            critiqued = self._critiques(active, round_)
            if not critiqued or stop():
                break
            revised = self._generate([ask for _, ask, _, _ in critiqued], round_)
            for (chain, _, critique, tokens), done in zip(critiqued, revised, strict=True):
                self._record_revision(chain, round_, critique, tokens, done)
        return [ChainResult(c.unit_id, c.source.response_id, c.steps, c.final) for c in chains]

    def _critiques(
        self, active: list[_Chain], round_: int
    ) -> list[tuple[_Chain, Messages, str, int]]:
        """Each chain's critique of this round; the chains whose critique is usable come back
        with the conversation that asks for their revision."""
        template = self.settings.template
        asks = [
            [
                *self._conversation(c),
                {
                    "role": "user",
                    "content": template.critique.format(
                        critique_request=c.order[round_ - 1].critique_request
                    ),
                },
            ]
            for c in active
        ]
        critiqued = []
        for chain, ask, done in zip(active, asks, self._generate(asks, round_), strict=True):
            principle = chain.order[round_ - 1]
            text = clean_generation(done.text) if done else ""
            outcome = outcome_of(text, done) if done else StepOutcome.too_long
            if outcome != StepOutcome.ok:
                tokens = done.tokens if done else 0
                chain.steps.append(StepResult(round_, principle.id, text, outcome, tokens))
                chain.active = False
                continue
            revision_ask = template.revision.format(revision_request=principle.revision_request)
            follow_up = [
                *ask,
                {"role": "assistant", "content": text},
                {"role": "user", "content": revision_ask},
            ]
            critiqued.append((chain, follow_up, text, done.tokens if done else 0))
        return critiqued

    def _record_revision(
        self,
        chain: _Chain,
        round_: int,
        critique: str,
        critique_tokens: int,
        done: Completion | None,
    ) -> None:
        text = clean_generation(done.text) if done else ""
        outcome = outcome_of(text, done) if done else StepOutcome.too_long
        if outcome == StepOutcome.ok and text == chain.current:
            outcome = StepOutcome.unchanged
        chain.steps.append(
            StepResult(
                round_,
                chain.order[round_ - 1].id,
                critique,
                StepOutcome.ok,
                critique_tokens,
                text if done else None,
                outcome,
                done.tokens if done else 0,
            )
        )
        if outcome == StepOutcome.ok:
            chain.current = chain.final = text
        else:
            chain.active = False


def confirm_revisions(
    backend: Backend,
    settings: JudgeSettings,
    chains: list[ChainResult],
    sources: dict[int, RevisionInput],
) -> list[ChainResult]:
    """The chains with the judge's P(final revision beats the original); a revision is
    confirmed when that exceeds 0.5 by more than the tie band."""
    todo = [
        (
            n,
            JudgeItem(
                0,
                FeedbackKind.pairwise,
                sources[c.response_id].prompt,
                [sources[c.response_id].text, c.final_text],
                [c.response_id, 0],
            ),
        )
        for n, c in enumerate(chains)
        if c.final_text is not None and c.response_id in sources
    ]
    out = list(chains)
    if not todo:
        return out
    for verdict in Judge(backend, settings).judge(todo):
        p_revision = 1.0 - float(verdict.scores["p_a_over_b"])
        out[verdict.unit_id] = replace(
            chains[verdict.unit_id],
            p_confirmed=p_revision,
            position_consistent=verdict.position_consistent,
            confirmed=p_revision > 0.5 + settings.tie_band,
        )
    return out
