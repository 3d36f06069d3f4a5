"""The local transformers backend (the CPU default): batched, with shared prefixes computed once.

Judge prompts share a lot: every prompt of a batch starts with the same system text and
rubric, and the two orders of a pair share the conversation too. A batch runs in three
steps on one KV cache: the batch's common prefix once, then each group's common part
(consecutive prompts that share more than that, e.g. the orders of a pair), then each
prompt's own suffix. Only the last position of each prompt goes through the LM head.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    PreTrainedTokenizerBase,
)

from workers.backends.base import GREEDY, Completion, Sampling
from workers.backends.prefix import group_by_prefix, shared_prefix_len


class TransformersBackend:
    """A causal LM from a local folder, run in-process with torch."""

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_batch: int = 32,
        max_tokens: int = 8192,
        dtype: str = "float32",
    ) -> None:
        self.model_name = str(model_path)
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model: Any = model.to(device)
        self.model.eval()
        self.device = torch.device(device)
        self.max_batch = max_batch  # rows per forward step
        self.max_tokens = max_tokens  # rows x padded length per forward step
        if device == "cpu" and os.cpu_count():
            torch.set_num_threads(os.cpu_count() or 1)

    def close(self) -> None:
        """Drop the model."""
        del self.model

    @torch.inference_mode()
    def choice_logprobs(
        self, prompts: Sequence[Sequence[int]], choices: Sequence[int]
    ) -> list[list[float]]:
        """Log-probs of the choice tokens after each prompt, read from the logits row."""
        if any(len(p) < 2 for p in prompts):
            raise ValueError("judge prompts need at least two tokens")
        hidden = self._last_hidden(prompts)
        logits = self.model.get_output_embeddings()(hidden).float()
        rows: list[list[float]] = torch.log_softmax(logits, dim=-1)[:, list(choices)].tolist()
        return rows

    def _last_hidden(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """The final hidden state at each prompt's last token, sharing prefixes.

        The batch's common prefix runs once; then groups of similar length go through in
        micro-batches (little padding), each on a copy of that prefix's cache.
        """
        shared = shared_prefix_len(prompts) if len(prompts) > 1 else 0
        groups = group_by_prefix(prompts, shared)
        base = _State.empty(self.device)
        if shared > 0:
            base = self._extend(base, [0], [list(prompts[0][:shared])])
        out: torch.Tensor | None = None
        for batch in self._micro_batches(prompts, groups):
            order, hidden = self._run_groups(copy.deepcopy(base), prompts, batch, shared)
            if out is None:
                out = hidden.new_empty((len(prompts), hidden.shape[-1]))
            out[torch.tensor(order, device=self.device)] = hidden
        assert out is not None
        return out

    def _micro_batches(
        self, prompts: Sequence[Sequence[int]], groups: list[tuple[int, list[int]]]
    ) -> list[list[tuple[int, list[int]]]]:
        """Groups sorted by length, cut so that rows x longest prompt stays within budget."""
        longest = {id(g): max(len(prompts[m]) for m in g[1]) for g in groups}
        batches: list[list[tuple[int, list[int]]]] = []
        rows = width = 0
        for group in sorted(groups, key=lambda g: longest[id(g)]):
            n, w = len(group[1]), longest[id(group)]
            if (
                batches
                and (rows + n) * max(width, w) <= self.max_tokens
                and rows + n <= self.max_batch
            ):
                batches[-1].append(group)
                rows, width = rows + n, max(width, w)
            else:
                batches.append([group])
                rows, width = n, w
        return batches

    def _run_groups(
        self,
        state: _State,
        prompts: Sequence[Sequence[int]],
        groups: list[tuple[int, list[int]]],
        shared: int,
    ) -> tuple[list[int], torch.Tensor]:
        """Each group's shared part, then each member's own suffix, on the prefix's cache."""
        firsts = [prompts[m[0]] for _, m in groups]
        state = self._extend(
            state,
            [0] * len(groups),
            [list(f[shared:p]) for f, (p, _) in zip(firsts, groups, strict=True)],
        )
        index = [g for g, (_, members) in enumerate(groups) for _ in members]
        suffixes = [list(prompts[m][p:]) for p, members in groups for m in members]
        order = [m for _, members in groups for m in members]
        state = self._extend(state, index, suffixes)
        return order, state.last_hidden

    def _extend(self, state: _State, index: list[int], seqs: list[list[int]]) -> _State:
        """Append one right-padded step of tokens to the selected rows of the cache."""
        rows = torch.tensor(index, device=self.device)
        cache, mask, lengths = state.cache, state.mask, state.lengths
        if cache is not None:
            cache.batch_select_indices(rows)
            mask, lengths = mask[rows], lengths[rows]
        else:
            mask = torch.zeros((len(seqs), 0), dtype=torch.long, device=self.device)
            lengths = torch.zeros(len(seqs), dtype=torch.long, device=self.device)
        width = max(1, max(len(s) for s in seqs))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
        new_mask = torch.tensor(
            [[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device
        )
        sizes = torch.tensor([len(s) for s in seqs], device=self.device)
        positions = lengths[:, None] + torch.arange(width, device=self.device)[None, :]
        full_mask = torch.cat([mask, new_mask], dim=1)
        result = self.model.base_model(
            input_ids=ids,
            attention_mask=full_mask,
            position_ids=positions,
            past_key_values=cache if cache is not None else DynamicCache(),
            use_cache=True,
        )
        last = (sizes - 1).clamp(min=0)
        hidden = result.last_hidden_state[torch.arange(len(seqs), device=self.device), last]
        return _State(result.past_key_values, full_mask, lengths + sizes, hidden)

    def stop_token_ids(self) -> set[int]:
        """Tokens that end a turn: the generation config's and the tokenizer's end tokens."""
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return ids

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[Sequence[int]], max_tokens: int, sampling: Sampling = GREEDY
    ) -> list[Completion]:
        """Continuations in left-padded batches of similar length, each ending at its model's
        end-of-turn token or at `max_tokens`."""
        stops = self.stop_token_ids()
        pad = self.tokenizer.pad_token_id
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=max_tokens,
            do_sample=sampling.temperature > 0,
            temperature=sampling.temperature if sampling.temperature > 0 else None,
            top_p=sampling.top_p if sampling.temperature > 0 else None,
            pad_token_id=pad,
            eos_token_id=sorted(stops),
        )
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            rows = order[start : start + self.max_batch]
            chunk = [prompts[i] for i in rows]
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in chunk])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
            if sampling.temperature > 0 and sampling.seed is not None:
                torch.manual_seed(sampling.seed + start)
            generated = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=config,
            )
            for i, tokens in zip(rows, generated[:, width:].tolist(), strict=True):
                end = next((n for n, t in enumerate(tokens) if t in stops), None)
                kept = tokens if end is None else tokens[:end]
                text = str(self.tokenizer.decode(kept, skip_special_tokens=True))
                out[i] = Completion(text, len(kept) + (end is not None), end is not None)
        return [c for c in out if c is not None]


class _State:
    """A KV cache with its attention mask, per-row lengths and last hidden states."""

    def __init__(
        self,
        cache: DynamicCache | None,
        mask: torch.Tensor,
        lengths: torch.Tensor,
        last_hidden: torch.Tensor,
    ) -> None:
        self.cache, self.mask, self.lengths, self.last_hidden = cache, mask, lengths, last_hidden

    @classmethod
    def empty(cls, device: torch.device) -> _State:
        """No tokens yet."""
        nothing = torch.zeros(0, device=device)
        return cls(None, nothing, nothing, nothing)
