"""The OpenAI-compatible backend: any server speaking /v1/completions, e.g. `vllm serve`.

Prompts go as token ids (rendered locally with the model's own tokenizer), a few dozen per
request, with a bounded number of requests in flight. Verdicts use vLLM's
`logprob_token_ids` extension, which returns the verdict tokens' log-probs whatever their
rank; a server without it must at least return them among `top_logprobs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from workers.backends.base import GREEDY, Completion, Sampling

_PROMPTS_PER_REQUEST = 32


class OpenAIBackend:
    """A model behind an OpenAI-compatible completions endpoint."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        tokenizer: Path,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 300.0,
    ) -> None:
        self.model_name = model
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(tokenizer)
        self.max_context: int | None = None  # the server's own limit applies
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self.pool = ThreadPoolExecutor(max_workers=concurrency)

    def close(self) -> None:
        """Close connections."""
        self.pool.shutdown()
        self.client.close()

    def _complete(self, body: dict[str, Any], prompts: Sequence[Sequence[int]]) -> list[Any]:
        chunks = [
            prompts[i : i + _PROMPTS_PER_REQUEST]
            for i in range(0, len(prompts), _PROMPTS_PER_REQUEST)
        ]

        def post(chunk: Sequence[Sequence[int]]) -> list[Any]:
            response = self.client.post(
                "/completions",
                json={"model": self.model_name, "prompt": [list(p) for p in chunk], **body},
            )
            response.raise_for_status()
            return sorted(response.json()["choices"], key=lambda c: c["index"])

        return [choice for result in self.pool.map(post, chunks) for choice in result]

    def choice_logprobs(
        self, prompts: Sequence[Sequence[int]], choices: Sequence[int]
    ) -> list[list[float]]:
        """Log-probs of the choice tokens after each prompt, from the server."""
        body = {
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": len(choices),
            "logprob_token_ids": list(choices),
            "return_tokens_as_token_ids": True,
        }
        # vLLM keys log-probs "token_id:N" when asked; other servers key them by token text.
        keys = [(f"token_id:{c}", self.tokenizer.decode([c])) for c in choices]
        out = []
        for choice in self._complete(body, prompts):
            top = choice["logprobs"]["top_logprobs"][0]
            row = []
            for by_id, by_text in keys:
                value = top.get(by_id, top.get(by_text))
                if value is None:
                    raise RuntimeError(f"the server returned no log-prob for token {by_id}")
                row.append(float(value))
            out.append(row)
        return out

    def generate(
        self, prompts: Sequence[Sequence[int]], max_tokens: int, sampling: Sampling = GREEDY
    ) -> list[Completion]:
        """Continuations from the server. Token counts are the local tokenizer's count of the
        text, plus the end-of-turn token when the model ended its turn (the completions API
        reports tokens only per request)."""
        body: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.temperature > 0 and sampling.seed is not None:
            body["seed"] = sampling.seed
        out = []
        for choice in self._complete(body, prompts):
            finished = choice.get("finish_reason") != "length"
            tokens = len(self.tokenizer.encode(choice["text"], add_special_tokens=False))
            out.append(Completion(choice["text"], tokens + finished, finished))
        return out
