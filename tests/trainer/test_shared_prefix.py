"""Shared-prompt DPO rows give TRL's per-token outputs and gradients, in TRL's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from tests.conftest import TinyModels
from trainer.shared_prefix import (
    SHARED_KEYS,
    SharedPrefixCollator,
    share_prefixes,
    supports_shared_prefix,
)

FIELDS = ("log_probs", "entropy", "mean_logits", "is_top1")

# Prompts and completions of different lengths; with max_length 12 the third pair's rows
# are cut inside the completions and the fourth's rejected row right after the prompt.
EXAMPLES = [
    {"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9, 2], "rejected_ids": [10, 2]},
    {"prompt_ids": [11], "chosen_ids": [12, 2], "rejected_ids": [13, 14, 15, 16, 2]},
    {"prompt_ids": [17, 18, 19, 20, 21, 22, 23], "chosen_ids": [24] * 8, "rejected_ids": [25] * 9},
    {"prompt_ids": [26] * 10, "chosen_ids": [27, 2], "rejected_ids": [28, 29, 30]},
]


def _model(path: Path, attention: str) -> Any:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation=attention
    )
    add_fused_lm_head(model, outputs=FIELDS)
    share_prefixes(model, FIELDS)
    return model


def _outputs(model: Any, batch: dict[str, torch.Tensor], shared: bool) -> tuple[Any, list[Any]]:
    """TRL's call: per-token outputs and the gradient of the summed log-probs."""
    model.zero_grad()
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    extra = {k: batch[k] for k in SHARED_KEYS} if shared else {}
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=labels,
        fused_lm_head=True,
        use_cache=False,
        **extra,
    )
    out.log_probs.sum().backward()
    return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_rows_give_trl_per_token_outputs_and_gradients(
    tiny_models: TinyModels, attention: str
) -> None:
    model = _model(tiny_models.causal_lm, attention)
    batch = SharedPrefixCollator(pad_token_id=0, max_length=12)(EXAMPLES)
    # Each pair is one row: the longest is prompt + chosen + rejected, cut to max_length each
    assert batch["shared_input_ids"].shape == (4, 7 + 5 + 5)
    assert batch["input_ids"].shape == (8, 12)

    trl, trl_grads = _outputs(model, batch, shared=False)
    ours, our_grads = _outputs(model, batch, shared=True)

    for field in FIELDS:
        assert torch.allclose(getattr(ours, field), getattr(trl, field), atol=1e-5), field
    assert torch.equal(ours.label_mask, trl.label_mask)
    assert len(our_grads) == len(trl_grads)
    for mine, theirs in zip(our_grads, trl_grads, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)


def test_rejected_tokens_restart_positions_after_the_prompt() -> None:
    batch = SharedPrefixCollator(pad_token_id=0)(EXAMPLES[:1])
    assert batch["shared_input_ids"][0].tolist() == [5, 6, 7, 8, 9, 2, 10, 2]
    assert batch["shared_position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 3, 4]
    assert batch["shared_segments"][0].tolist() == [1, 1, 1, 2, 2, 2, 3, 3]
    # chosen 8, 9, 2 from positions 2, 3, 4; rejected 10 from the prompt's end, 2 from 10
    assert batch["shared_gather"].tolist() == [2, 3, 4, 2, 6]


def test_models_whose_rows_cannot_be_shared_keep_trl_rows(tiny_models: TinyModels) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    assert supports_shared_prefix(model, "keep_start") is None
    assert "keep_end" in str(supports_shared_prefix(model, "keep_end"))
    model.config.output_router_logits = False  # TRL adds the MoE loss whatever its value
    assert "mixture-of-experts" in str(supports_shared_prefix(model, "keep_start"))
    del model.config.output_router_logits
    model.config.layer_types = ["sliding_attention", "full_attention"]
    assert "sliding-window" in str(supports_shared_prefix(model, "keep_start"))
    model.config.layer_types = None
    model.config.final_logit_softcapping = 30.0
    assert "softcapping" in str(supports_shared_prefix(model, "keep_start"))
    model.config.model_type = "bloom"  # ALiBi, built from a 2D mask
    assert "bloom" in str(supports_shared_prefix(model, "keep_start"))
