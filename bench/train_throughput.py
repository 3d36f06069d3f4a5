"""DPO training throughput: Arbiter's default configuration vs TRL's defaults, one run.

Same model, data, batch size and epochs (two); the only differences are Arbiter's defaults:
each pair's prompt computed once for both completions, and only completion positions
projected through the LM head (`shared_prompt`, see trainer/shared_prefix.py; TRL: a row per
completion, and off CUDA/XPU every position through the LM head), reference log-probs
computed once before training (`precompute_ref_log_probs`, TRL default off: a reference
forward pass every step), batches of similar length (`group_by_length`, TRL default: random
batches, padded to their longest row) and bf16 mixed precision where the hardware has native
bf16 (TRL default: float32 unless asked, on CPUs always). Timed from the start of training to
the end (the precomputation included).

Model: a random-weight Llama-shaped model (--hidden, --layers) with SmolLM2's tokenizer, or
--model DIR. Data: the first --pairs HH-RLHF pairs from ../shared/data. Prints a table, then
as its LAST line {"speedup_vs_trl_default": TRL-default time / Arbiter time, ...}.

    .venv/bin/python bench/train_throughput.py
    .venv/bin/python bench/train_throughput.py --pairs 512 --hidden 512 --layers 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from service.config import Settings
from service.domain.importers import split_hh_dialogue
from trainer.config import TrainSpec
from trainer.formats import to_dataset
from trainer.train import run_training
from workers.models import resolve_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-sample.jsonl"


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """A random-weight Llama with SmolLM2's tokenizer (converted from its package, offline)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2", Settings().model_cache))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=max(hidden // 64, 1),
        num_key_value_heads=max(hidden // 64, 1),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_rows(n: int) -> list[dict[str, str]]:
    """The first n HH-RLHF pairs as prompt/chosen/rejected rows."""
    rows = []
    with DATA.open() as f:
        for line in f:
            raw = json.loads(line)
            prompt, chosen, rejected = split_hh_dialogue(raw["chosen"], raw["rejected"])
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
            if len(rows) == n:
                break
    return rows


def timed(spec: TrainSpec, rows: list[dict[str, str]], out: Path) -> float:
    """Seconds to train `spec` on the rows (no eval)."""
    start = time.perf_counter()
    run_training(spec, to_dataset(rows, "dpo"), None, out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2, help="alternate runs; best of each")
    parser.add_argument(
        "--ablate", action="store_true", help="also time Arbiter's defaults with TRL's rows"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or str(build_model(root / "model", args.hidden, args.layers))
        rows = load_rows(args.pairs)
        tok = AutoTokenizer.from_pretrained(model)
        tokens = sum(
            min(len(tok(r["prompt"] + r[side])["input_ids"]), args.max_length)
            for r in rows
            for side in ("chosen", "rejected")
        )
        base = {
            "kind": "dpo",
            "model": model,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "eval_fraction": 0.0,
            "logging_steps": 1000,
        }
        warm = TrainSpec(**{**base, "epochs": 1.0})  # type: ignore[arg-type]
        timed(warm, rows[: args.batch_size * 2], root / "warm")
        trl_spec = TrainSpec(
            **base,  # type: ignore[arg-type]
            shared_prompt=False,
            precompute_ref_log_probs=False,
            group_by_length=False,
            bf16=False,
        )
        ours_spec = TrainSpec(**base)  # type: ignore[arg-type]
        unshared_spec = TrainSpec(**base, shared_prompt=False)  # type: ignore[arg-type]
        trl_runs, our_runs, unshared_runs = [], [], []
        for n in range(args.repeats):  # alternating, so drifts in machine speed hit both
            trl_runs.append(timed(trl_spec, rows, root / f"trl{n}"))
            our_runs.append(timed(ours_spec, rows, root / f"arbiter{n}"))
            if args.ablate:
                unshared_runs.append(timed(unshared_spec, rows, root / f"unshared{n}"))
        trl, ours = min(trl_runs), min(our_runs)
        print(f"runs (s): TRL defaults {trl_runs}, Arbiter {our_runs}, TRL rows {unshared_runs}")

    samples = args.epochs * len(rows)
    name = args.model or f"random Llama {args.hidden}x{args.layers}"
    print(
        f"DPO, {len(rows)} HH-RLHF pairs x {args.epochs:g} epochs, batch {args.batch_size}, "
        f"max_length {args.max_length}, model {name}"
    )
    print(f"{'configuration':<58}{'seconds':>9}{'samples/s':>11}{'tokens/s':>10}")
    table = [("TRL defaults", trl)]
    if unshared_runs:
        table.append(("Arbiter, but TRL's rows (shared_prompt off)", min(unshared_runs)))
    table.append(("Arbiter (shared prompt, precomputed ref, grouped, bf16)", ours))
    for name, secs in table:
        print(f"{name:<58}{secs:>9.1f}{samples / secs:>11.2f}{args.epochs * tokens / secs:>10.0f}")
    print(
        json.dumps(
            {
                "speedup_vs_trl_default": round(trl / ours, 3),
                "trl_default_samples_per_s": round(samples / trl, 3),
                "arbiter_samples_per_s": round(samples / ours, 3),
                "arbiter_tokens_per_s": round(args.epochs * tokens / ours, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
