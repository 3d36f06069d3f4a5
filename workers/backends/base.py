"""The interface every judge backend offers: verdict-token log-probs and plain generation.

Prompts arrive as token ids, rendered once by the worker through the model's own chat
template, so every backend scores exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from transformers import PreTrainedTokenizerBase


class Backend(Protocol):
    """An LLM the judge can ask for next-token log-probs and for text."""

    name: str
    model_name: str
    tokenizer: PreTrainedTokenizerBase

    def choice_logprobs(
        self, prompts: Sequence[Sequence[int]], choices: Sequence[int]
    ) -> list[list[float]]:
        """For each prompt, the log-probability of each choice token as the next token.

        The log-probs are over the whole vocabulary (read from the logits row, so a choice
        outside the top-k still gets its value); callers normalise over the choices.
        """
        ...

    def generate(self, prompts: Sequence[Sequence[int]], max_tokens: int) -> list[str]:
        """Greedy continuations of the prompts, up to `max_tokens` tokens each."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...
