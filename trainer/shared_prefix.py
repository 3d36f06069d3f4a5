"""DPO with one pass over each prompt: a pair's chosen and rejected completions share it.

TRL's collator makes two rows of each pair, prompt + chosen and prompt + rejected, so every
prompt goes through the model twice. Here each pair is one row, prompt + chosen + rejected,
with the rejected tokens' positions starting again after the prompt and an attention mask
that lets them see the prompt and each other but not the chosen tokens. Every completion
token then has exactly the context it has in TRL's layout, so the log-probabilities are the
same (up to float rounding), for a fraction of the compute when prompts are long (HH-RLHF
prompts are three times their completions).

Only the positions that predict a completion token go through the LM head. TRL's fused
head does so on CUDA and XPU; on other devices it projects every position, prompt and
padding included, onto the whole vocabulary.

The trainer still sees TRL's batch: the collator adds the shared rows next to TRL's
`input_ids` / `completion_mask`, and the model's forward turns them into TRL's per-token
outputs, laid out as TRL's rows, so TRL's losses and metrics run unchanged.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import (
    _CHUNKED_LOGPROB_CHUNK_SIZE,  # vocabulary columns per LM-head tile in TRL's fused head
    FusedCausalLMOutput,
    maybe_gather_lm_head_ctx,
)

# What the shared rows hold at each position.
PAD, PROMPT, CHOSEN, REJECTED = 0, 1, 2, 3
SHARED_KEYS = ("shared_input_ids", "shared_position_ids", "shared_segments", "shared_gather")
_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4D mask
# Decoders whose tokens meet only in attention with rotary positions: a 4D mask and
# position ids fully describe the shared rows to them (no ALiBi built from a 2D mask, no
# recurrent or convolutional layers that run in index order).
_DECODERS = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "olmo2", "smollm3"}
)


def supports_shared_prefix(model: PreTrainedModel, truncation_mode: str) -> str | None:
    """None when `model` can train on shared rows, else why not (the caller keeps TRL's rows)."""
    config = model.config
    if config.get_text_config() is not config:
        return "a multimodal model"
    if config.model_type not in _DECODERS:
        return f"model type {config.model_type!r} is not known to be plain attention"
    layers = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None)
    if any(t != "full_attention" for t in layers) or (
        not layers and window and getattr(config, "use_sliding_window", True)
    ):
        return "sliding-window attention (a 4D mask would replace the window)"
    if truncation_mode != "keep_start":
        return "truncation_mode keep_end cuts each completion's prompt differently"
    if getattr(config, "_attn_implementation", None) not in _ATTENTION:
        return f"attention {config._attn_implementation!r} takes no custom mask"
    for scaling in (
        "final_logit_softcapping",
        "logit_scale",
        "output_multiplier",
        "logits_scaling",
        "lm_head_multiplier",
    ):
        if getattr(config, scaling, None) is not None:
            return f"{scaling} on the logits"
    if hasattr(config, "output_router_logits"):  # TRL adds the MoE aux loss by this test
        return "a mixture-of-experts load-balancing loss"
    return None


@dataclass
class SharedPrefixCollator(DataCollatorForPreference):
    """TRL's preference batch plus one shared row per pair (see the module docstring).

    `shared_gather` lists, in the order of TRL's completion tokens (chosen rows first, then
    rejected, each left to right), the flat position in the shared rows whose hidden state
    predicts that token.
    """

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        rows = [self._parts(e) for e in examples]
        width = max(len(p) + len(c) + len(r) for p, c, r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        segments = torch.full((len(rows), width), PAD, dtype=torch.long)
        chosen_gather: list[int] = []
        rejected_gather: list[int] = []
        for i, (prompt, chosen, rejected) in enumerate(rows):
            p, c, r = len(prompt), len(chosen), len(rejected)
            ids[i, : p + c + r] = torch.tensor(prompt + chosen + rejected, dtype=torch.long)
            positions[i, : p + c] = torch.arange(p + c)
            positions[i, p + c : p + c + r] = torch.arange(p, p + r)
            segments[i, :p], segments[i, p : p + c] = PROMPT, CHOSEN
            segments[i, p + c : p + c + r] = REJECTED
            row = i * width
            # TRL scores the token at position t >= 1 from the hidden state at t - 1; the
            # first token of either completion is predicted by the prompt's last position.
            chosen_gather += [row + t - 1 for t in range(max(p, 1), p + c)]
            rejected_gather += [
                row + (p - 1 if t == p else c + t - 1) for t in range(max(p, 1), p + r)
            ]
        batch["shared_input_ids"] = ids
        batch["shared_position_ids"] = positions
        batch["shared_segments"] = segments
        batch["shared_gather"] = torch.tensor(chosen_gather + rejected_gather, dtype=torch.long)
        return batch

    def _parts(self, example: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
        """Prompt, chosen and rejected ids, truncated as TRL's keep_start cuts each of its rows."""
        prompt, chosen, rejected = (
            list(example["prompt_ids"]),
            list(example["chosen_ids"]),
            list(example["rejected_ids"]),
        )
        if self.max_length is None:
            return prompt, chosen, rejected
        room = max(self.max_length - len(prompt), 0)
        return prompt[: self.max_length], chosen[:room], rejected[:room]


def shared_attention_mask(segments: torch.Tensor, dtype: torch.dtype, eager: bool) -> torch.Tensor:
    """(batch, 1, T, T) mask: causal, and a completion sees the prompt and itself only.

    Padding positions see themselves, so no row of the mask is empty (their outputs are
    never read). sdpa takes the boolean mask; eager attention adds a float one.
    """
    width = segments.size(1)
    index = torch.arange(width, device=segments.device)
    causal = index[None, :] <= index[:, None]
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal & (key != PAD) & ((key == PROMPT) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool, device=segments.device)
    allowed = allowed[:, None]
    if not eager:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def share_prefixes(
    model: Any,
    outputs: tuple[str, ...],
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> None:
    """Let `model` (already given TRL's fused LM head) score a batch through its shared rows.

    A call with the `shared_*` tensors runs the backbone once over the shared rows and
    returns TRL's `FusedCausalLMOutput` in TRL's row layout, with the `outputs` fields TRL
    asked its fused head for; any other call goes to the forward it had. Idempotent.
    `autocast` is entered around the shared pass, for a model whose current forward is a
    mixed-precision wrapper (accelerate's, on a reference model) that the pass goes around.
    """
    if getattr(model, "_arbiter_shares_prefixes", False):
        return
    fused_forward = model.forward

    @functools.wraps(fused_forward)
    def forward(
        self: Any,
        *args: Any,
        shared_input_ids: torch.Tensor | None = None,
        shared_position_ids: torch.Tensor | None = None,
        shared_segments: torch.Tensor | None = None,
        shared_gather: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if shared_input_ids is None or not kwargs.get("fused_lm_head"):
            return fused_forward(*args, **kwargs)
        assert shared_position_ids is not None and shared_segments is not None
        assert shared_gather is not None
        with autocast():
            return _shared_forward(
                self, shared_input_ids, shared_position_ids, shared_segments, shared_gather,
                kwargs["labels"], outputs,
            )  # fmt: skip

    model.forward = types.MethodType(forward, model)
    model._arbiter_shares_prefixes = True


def _shared_forward(
    model: Any,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    segments: torch.Tensor,
    gather: torch.Tensor,
    labels: torch.Tensor,
    outputs: tuple[str, ...],
) -> FusedCausalLMOutput:
    lm_head = model.get_output_embeddings()
    eager = model.config._attn_implementation == "eager"
    mask = shared_attention_mask(segments, lm_head.weight.dtype, eager)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    scored = labels[:, 1:] != -100  # TRL's completion tokens, in TRL's rows
    targets = labels[:, 1:][scored]
    if targets.numel() != gather.numel():
        raise ValueError("shared rows and TRL's rows disagree on the completion tokens")
    weight, bias = lm_head.weight, lm_head.bias
    states = hidden.reshape(-1, hidden.size(-1))[gather].to(weight.device)
    targets = targets.to(weight.device)
    if isinstance(weight, DTensor):  # FSDP2 shards the head; as TRL's fused head does
        weight = weight.full_tensor()
        bias = bias.full_tensor() if bias is not None else None
    with maybe_gather_lm_head_ctx(weight, bias):  # DeepSpeed ZeRO-3
        per_token = ChunkedLogProbFunction.apply(  # type: ignore[no-untyped-call]
            states, weight, bias, targets, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs
        )
    log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
        None if x is None else x.new_zeros(scored.shape).masked_scatter(scored.to(x.device), x)
        for x in per_token
    )
    assert log_probs is not None
    return FusedCausalLMOutput(
        loss=-log_probs.sum() / scored.sum().clamp(min=1),
        log_probs=log_probs,
        entropy=entropy,
        log_sum_sq_probs=log_sum_sq_probs,
        mean_logits=mean_logits,
        is_top1=is_top1,
        label_mask=scored,
    )
