"""Prove TRL's own dataset preparation accepts Arbiter's standard preference rows."""

from __future__ import annotations

from pathlib import Path

import datasets

from tests.conftest import TinyModels
from tests.support.tiny_models import build_tokenizer, prepare_with_trl

PROMPTS = [
    "\n\nHuman: hi\n\nAssistant:",
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Tell me a joke.\n\nAssistant:",
    "\n\nHuman: How do I stay healthy?\n\nAssistant:",
    "\n\nHuman: Explain photosynthesis simply.\n\nAssistant:",
    "\n\nHuman: Write a short poem about the sea.\n\nAssistant:",
]
GOOD = [
    " Hello! How can I help you today?",
    " The capital of France is Paris.",
    " Why did the chicken cross the road? To get to the other side.",
    " Sleep well, eat vegetables and exercise.",
    " Plants turn sunlight, water and carbon dioxide into sugar.",
    " The sea is wide, the sea is deep.",
]
BAD = [
    " Go away.",
    " I don't know.",
    " No.",
    " Eat only candy.",
    " It is magic.",
    " Sorry, I cannot help with that.",
]


def _pairwise_rows() -> datasets.Dataset:
    """Return standard prompt/chosen/rejected rows with Arbiter's extra columns."""
    return datasets.Dataset.from_list(
        [
            {"prompt": p, "chosen": c, "rejected": r, "margin": float(i % 3), "source": "human"}
            for i, (p, c, r) in enumerate(zip(PROMPTS, GOOD, BAD, strict=True))
        ]
    )


def _unpaired_rows() -> datasets.Dataset:
    """Return standard prompt/completion/label rows, balanced between labels."""
    rows = [
        {"prompt": p, "completion": c, "label": True} for p, c in zip(PROMPTS, GOOD, strict=True)
    ]
    rows += [
        {"prompt": p, "completion": c, "label": False} for p, c in zip(PROMPTS, BAD, strict=True)
    ]
    return datasets.Dataset.from_list(rows)


def _assert_token_lists(dataset: datasets.Dataset, columns: list[str]) -> None:
    """Assert every row holds a non-empty list of ints in each column."""
    for row in dataset:
        for column in columns:
            ids = row[column]
            assert isinstance(ids, list) and ids, (column, row)
            assert all(isinstance(i, int) for i in ids), (column, row)


def test_tokenizer_is_deterministic_and_chat_capable(tmp_path: Path) -> None:
    """Two builds give the same vocab, and the chat template renders ChatML."""
    first = build_tokenizer(tmp_path / "a")
    second = build_tokenizer(tmp_path / "b")
    assert first.get_vocab() == second.get_vocab()
    assert 512 <= len(first) <= 1000
    assert first.pad_token and first.eos_token and first.bos_token and first.unk_token
    rendered = first.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_models_are_saved_as_safetensors(tiny_models: TinyModels) -> None:
    """Both model directories hold safetensors weights and the tokenizer."""
    for model_dir in (tiny_models.causal_lm, tiny_models.classifier):
        assert (model_dir / "model.safetensors").is_file()
        assert (model_dir / "tokenizer.json").is_file()


def test_dpo_prepares_standard_rows(tiny_models: TinyModels, tmp_path: Path) -> None:
    """DPOTrainer tokenizes prompt/chosen/rejected rows and keeps extra columns."""
    prepared = prepare_with_trl("dpo", _pairwise_rows(), tiny_models.causal_lm, tmp_path)
    assert len(prepared) == len(PROMPTS)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(prepared.column_names)
    assert {"margin", "source"} <= set(prepared.column_names)
    _assert_token_lists(prepared, ["prompt_ids", "chosen_ids", "rejected_ids"])


def test_dpo_prepares_conversational_rows(tiny_models: TinyModels, tmp_path: Path) -> None:
    """DPOTrainer renders conversational rows through the tiny chat template."""
    rows = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": "hi"}],
                "chosen": [{"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "assistant", "content": "Go away."}],
            }
        ]
        * 2
    )
    prepared = prepare_with_trl("dpo", rows, tiny_models.causal_lm, tmp_path)
    _assert_token_lists(prepared, ["prompt_ids", "chosen_ids", "rejected_ids"])


def test_reward_prepares_standard_rows(tiny_models: TinyModels, tmp_path: Path) -> None:
    """RewardTrainer tokenizes prompt+chosen and prompt+rejected into chosen_ids/rejected_ids."""
    prepared = prepare_with_trl("reward", _pairwise_rows(), tiny_models.classifier, tmp_path)
    assert len(prepared) == len(PROMPTS)
    assert {"chosen_ids", "rejected_ids", "margin", "source"} <= set(prepared.column_names)
    _assert_token_lists(prepared, ["chosen_ids", "rejected_ids"])


def test_kto_prepares_unpaired_rows(tiny_models: TinyModels, tmp_path: Path) -> None:
    """KTOTrainer tokenizes prompt/completion/label rows and adds KL completions."""
    prepared = prepare_with_trl("kto", _unpaired_rows(), tiny_models.causal_lm, tmp_path)
    assert len(prepared) == 2 * len(PROMPTS)
    assert {"prompt_ids", "completion_ids", "KL_completion_ids", "label"} <= set(
        prepared.column_names
    )
    _assert_token_lists(prepared, ["prompt_ids", "completion_ids", "KL_completion_ids"])
