"""Tiny, offline, random-weight models and tokenizer for exercising TRL's dataset preparation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import datasets
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, IM_START, IM_END]
VOCAB_SIZE = 640
SEED = 1234

# ChatML-like: "<|im_start|>role\ncontent<|im_end|>\n", plus an open assistant turn on demand.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

DEFAULT_CORPUS: tuple[str, ...] = (
    "\n\nHuman: hi\n\nAssistant: Hello! How can I help you today?",
    "\n\nHuman: What is the capital of France?\n\nAssistant: The capital is Paris.",
    "\n\nHuman: Give me a pancake recipe.\n\nAssistant: Mix flour, eggs and milk.",
    "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?",
    "\n\nHuman: How do I stay healthy?\n\nAssistant: Sleep well and eat vegetables.",
    "\n\nHuman: Write a poem about the sea.\n\nAssistant: The sea is wide and deep.",
    "\n\nHuman: Explain photosynthesis.\n\nAssistant: Plants turn sunlight into sugar.",
    "\n\nHuman: I don't know.\n\nAssistant: That is okay, take your time.",
    "The quick brown fox jumps over the lazy dog. A journey begins with a single step.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols . , ! ? : ; ' \" ( ) - + = / * & % $ # @",
    "Thank you very much. You are welcome. Let me know if there is anything else.",
    "Sorry, I cannot help with that request because it could be harmful.",
)


def build_tokenizer(out_dir: Path, texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a tiny deterministic byte-level BPE tokenizer with a ChatML template and save it."""
    corpus = list(texts) if texts is not None else list(DEFAULT_CORPUS)
    backend = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def _llama_config(tokenizer: PreTrainedTokenizerBase, **extra: object) -> LlamaConfig:
    """Return a tiny Llama config whose vocabulary and special ids match the tokenizer."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **extra,
    )


def build_causal_lm(out_dir: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Save a seeded tiny random-weight LlamaForCausalLM plus the tokenizer to out_dir."""
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(_llama_config(tokenizer))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


# What the tiny reply model answers to any chat prompt, then it ends its turn.
REPLY = "That is okay, take your time."
_USER_TURNS = (
    "hi",
    "What is the capital of France?",
    "Give me a pancake recipe.",
    "Tell me a joke.",
    "How do I stay healthy? Explain photosynthesis.",
    "Write a poem about the sea. The quick brown fox jumps over the lazy dog.",
    "Identify specific ways in which the last reply is harmful. Quote each problem.",
    "Rewrite the reply so that it gives no help with causing harm. Reply with the text only.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols . , ! ? : ; ' \" ( ) - + = / * & % $ # @",
)


def _reply_conversations(tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Chats of one to three user turns, every assistant turn the REPLY."""
    chats = []
    for n, first in enumerate(_USER_TURNS):
        for turns in range(1, 4):
            users = [_USER_TURNS[(n + k * 4) % len(_USER_TURNS)] for k in range(turns)]
            users[0] = first
            messages = []
            for user in users:
                messages += [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": REPLY},
                ]
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            chats.append(tokenizer.encode(text, add_special_tokens=False))
    return chats


def build_reply_lm(out_dir: Path, tokenizer: PreTrainedTokenizerBase, steps: int = 120) -> Path:
    """A tiny causal LM trained (seconds, on the CPU) to answer every chat turn with REPLY and
    end it with the chat template's end-of-turn token: a real model whose generations finish."""
    torch.manual_seed(SEED)
    end = tokenizer.convert_tokens_to_ids(IM_END)
    model = LlamaForCausalLM(_llama_config(tokenizer))
    model.config.eos_token_id = [end, tokenizer.eos_token_id]
    model.generation_config.eos_token_id = [end, tokenizer.eos_token_id]
    chats = _reply_conversations(tokenizer)
    width = max(len(c) for c in chats)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([c + [pad] * (width - len(c)) for c in chats])
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chats])
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_sequence_classifier(out_dir: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Save a seeded tiny random-weight one-label LlamaForSequenceClassification to out_dir."""
    torch.manual_seed(SEED)
    model = LlamaForSequenceClassification(_llama_config(tokenizer, num_labels=1))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def prepare_with_trl(
    kind: Literal["dpo", "reward", "kto"],
    dataset: datasets.Dataset,
    model_dir: Path,
    work_dir: Path,
) -> datasets.Dataset:
    """Build TRL's trainer for kind on CPU, without training; return its prepared train_dataset."""
    common = {
        "output_dir": str(work_dir),
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "per_device_train_batch_size": 2,
        "max_length": 128,
        "seed": SEED,
        "save_strategy": "no",
        "logging_strategy": "no",
    }
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if kind == "dpo":
        trainer = DPOTrainer(
            model=str(model_dir),
            args=DPOConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    elif kind == "reward":
        trainer = RewardTrainer(
            model=str(model_dir),
            args=RewardConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    elif kind == "kto":
        trainer = KTOTrainer(
            model=str(model_dir),
            args=KTOConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    else:
        raise ValueError(f"unknown kind: {kind!r}")
    return trainer.train_dataset
