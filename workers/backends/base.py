"""The interface every LLM backend offers: verdict-token log-probs (judges) and batched
generation (chain-of-thought rationales, critiques and revisions).

Prompts arrive as token ids, rendered once by the worker through the model's own chat
template, so every backend scores exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Completion:
    """A generated continuation: its text, how many tokens it took, and whether the model
    ended it (False: it stopped at the token limit)."""

    text: str
    tokens: int
    finished: bool


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens: greedy at temperature 0, else sampled (seeded where the engine can)."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


GREEDY = Sampling()


class Backend(Protocol):
    """An LLM the judge can ask for next-token log-probs and for text."""

    name: str
    model_name: str
    tokenizer: PreTrainedTokenizerBase
    max_context: int | None  # longest prompt + generation the model takes; None: unknown

    def choice_logprobs(
        self, prompts: Sequence[Sequence[int]], choices: Sequence[int]
    ) -> list[list[float]]:
        """For each prompt, the log-probability of each choice token as the next token.

        The log-probs are over the whole vocabulary (read from the logits row, so a choice
        outside the top-k still gets its value); callers normalise over the choices.
        """
        ...

    def generate(
        self, prompts: Sequence[Sequence[int]], max_tokens: int, sampling: Sampling = GREEDY
    ) -> list[Completion]:
        """Continuations of the prompts, up to `max_tokens` tokens each, all in one batch."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...
