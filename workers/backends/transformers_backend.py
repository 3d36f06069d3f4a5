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
        self.max_context: int | None = getattr(model.config, "max_position_embeddings", None)
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

    def _extend(self, state: _State, index: list[int] | None, seqs: list[list[int]]) -> _State:
        """Append one right-padded step of tokens to the selected rows of the cache (`index`:
        which rows, repeated as needed; None: every row as it is)."""
        cache, mask, lengths = state.cache, state.mask, state.lengths
        if cache is not None and index is not None:
            rows = torch.tensor(index, device=self.device)
            cache.batch_select_indices(rows)
            mask, lengths = mask[rows], lengths[rows]
        elif cache is None:
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
        """Continuations, `max_batch` prompts decoded together: each group is prefilled in
        length-sorted micro-batches (little padding), then decoded one token per step for all
        its rows; a row leaves the batch when it ends its turn or reaches `max_tokens`."""
        stops = self.stop_token_ids()
        generator = None
        if sampling.temperature > 0 and sampling.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            rows = order[start : start + self.max_batch]
            state = self._prefill([list(prompts[i]) for i in rows])
            for i, (tokens, finished) in zip(
                rows, self._decode(state, max_tokens, stops, sampling, generator), strict=True
            ):
                text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
                out[i] = Completion(text, len(tokens) + finished, finished)
        return [c for c in out if c is not None]

    def _prefill(self, seqs: list[list[int]]) -> _State:
        """The prompts' KV, computed in micro-batches of similar length within the token
        budget, merged into one right-padded state (rows in the order given)."""
        parts: list[_State] = []
        rows = width = 0
        batch: list[list[int]] = []
        for seq in seqs:  # sorted by length: each micro-batch pads to its own longest
            if batch and (rows + 1) * max(width, len(seq)) > self.max_tokens:
                parts.append(self._extend(_State.empty(self.device), [], batch))
                batch, rows, width = [], 0, 0
            batch.append(seq)
            rows, width = rows + 1, max(width, len(seq))
        parts.append(self._extend(_State.empty(self.device), [], batch))
        return parts[0] if len(parts) == 1 else _State.merge(parts)

    def _decode(
        self,
        state: _State,
        max_tokens: int,
        stops: set[int],
        sampling: Sampling,
        generator: torch.Generator | None,
    ) -> list[tuple[list[int], bool]]:
        """Each row's generated tokens (without the end token) and whether it ended its turn."""
        n = state.last_hidden.shape[0]
        tokens: list[list[int]] = [[] for _ in range(n)]
        finished = [False] * n
        live = list(range(n))  # row of the batch -> row of the result
        lm_head = self.model.get_output_embeddings()
        for step in range(max_tokens):
            picked = _pick(lm_head(state.last_hidden).float(), sampling, generator).tolist()
            keep = []
            for row, token in enumerate(picked):
                if token in stops:
                    finished[live[row]] = True
                else:
                    tokens[live[row]].append(token)
                    keep.append(row)
            if not keep or step == max_tokens - 1:
                break
            if len(keep) < len(live):  # finished rows leave the batch
                state = state.select(keep)
                live = [live[k] for k in keep]
            state = self._extend(state, None, [[picked[k]] for k in keep])
        return list(zip(tokens, finished, strict=True))


def _pick(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> Any:
    """The next token of each row: greedy, or sampled with temperature and nucleus (top-p)."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1:
        sorted_probs, indices = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > sampling.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(-1, indices, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


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

    def select(self, rows: list[int]) -> _State:
        """Only these rows (a copy of their part of the cache)."""
        index = torch.tensor(rows, device=self.mask.device)
        assert self.cache is not None
        self.cache.batch_select_indices(index)
        return _State(self.cache, self.mask[index], self.lengths[index], self.last_hidden[index])

    @classmethod
    def merge(cls, parts: list[_State]) -> _State:
        """The rows of several states as one, each padded on the right to the longest."""
        width = max(p.mask.shape[1] for p in parts)

        def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - t.shape[dim]
            if not missing:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t, t.new_zeros(shape)], dim=dim)

        per_part: list[Any] = [p.cache.layers for p in parts if p.cache is not None]
        layers = [
            (
                torch.cat([pad(part[n].keys, 2) for part in per_part]),
                torch.cat([pad(part[n].values, 2) for part in per_part]),
            )
            for n in range(len(per_part[0]))
        ]
        return cls(
            DynamicCache(layers),
            torch.cat([pad(p.mask, 1) for p in parts]),
            torch.cat([p.lengths for p in parts]),
            torch.cat([p.last_hidden for p in parts]),
        )
