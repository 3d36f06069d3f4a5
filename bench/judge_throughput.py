"""Judge throughput: log-prob verdicts vs generated verdicts, both orders vs one.

One backend and one model, one run, on HH-RLHF pairs from ../shared/data:

  1. logprob, both orders: Arbiter's judge (one prefill + one token per order; the two orders
     of a pair go to the engine side by side so their shared prefix is computed once);
  2. logprob, one order: the same, one order per pair;
  3. generated, both orders: the MT-Bench/FastChat-style baseline: the judge writes an
     explanation ending in "[[A]]" or "[[B]]" (their pair-v2 prompt), parsed from the text,
     up to --max-new-tokens tokens, greedy, both orders.

The modes warm up on 4 other pairs, then each is timed on --pairs pairs in batches of
--batch pairs; vLLM's prefix cache is emptied before each timed mode (only the sharing
within a mode counts). Prints a table, then as its LAST line one JSON object:
{"speedup_vs_generated": generated time / logprob time (both orders each),
 "both_orders_cost": logprob both-orders time / logprob one-order time, ...}.

    .venv/bin/python bench/judge_throughput.py                       # transformers, SmolLM2
    .venv/bin/python bench/judge_throughput.py --backend vllm
    .venv/bin/python bench/judge_throughput.py --model /path/to/model --pairs 64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import Settings
from service.domain.importers import split_hh_dialogue
from service.domain.judgments import JudgeItem
from service.models import FeedbackKind
from workers.backends import load_backend
from workers.backends.base import Backend
from workers.judge import Judge, JudgeSettings
from workers.prompts import load_template

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-sample.jsonl"

# FastChat's MT-Bench "pair-v2" judge prompt (llm_judge/data/judge_prompts.jsonl).
FASTCHAT_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. You should choose the assistant that "
    "follows the user's instructions and answers the user's question better. Your evaluation "
    "should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, "
    "and level of detail of their responses. Begin your evaluation by comparing the two "
    "responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow "
    "the length of the responses to influence your evaluation. Do not favor certain names of "
    "the assistants. Be as objective as possible. After providing your explanation, output your "
    'final verdict by strictly following this format: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
FASTCHAT_USER = (
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{a}\n"
    "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n"
    "[The End of Assistant B's Answer]"
)


def load_pairs(n: int) -> list[JudgeItem]:
    """The first n HH-RLHF pairs as pairwise items."""
    items = []
    with DATA.open() as f:
        for line in f:
            row = json.loads(line)
            prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
            items.append(
                JudgeItem(len(items), FeedbackKind.pairwise, prompt, [chosen, rejected], [0, 1])
            )
            if len(items) == n:
                break
    return items


def run_logprob(backend: Backend, items: list[JudgeItem], orders: str, batch: int) -> float:
    """Seconds to judge the items with log-prob verdicts."""
    judge = Judge(backend, JudgeSettings(load_template("helpfulness"), orders=orders))  # type: ignore[arg-type]
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        judge.judge([(n, item) for n, item in enumerate(items[i : i + batch])])
    return time.perf_counter() - start


def run_generated(
    backend: Backend, items: list[JudgeItem], batch: int, max_new_tokens: int
) -> tuple[float, int, int]:
    """Seconds to judge both orders by generating a verdict text; parsed and generated counts."""
    tok = backend.tokenizer
    prompts = []
    for item in items:
        for a, b in ((0, 1), (1, 0)):
            messages = [
                {"role": "system", "content": FASTCHAT_SYSTEM},
                {
                    "role": "user",
                    "content": FASTCHAT_USER.format(
                        question=item.prompt, a=item.responses[a], b=item.responses[b]
                    ),
                },
            ]
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompts.append(tok.encode(text, add_special_tokens=False))
    start = time.perf_counter()
    texts: list[str] = []
    for i in range(0, len(prompts), 2 * batch):
        texts.extend(c.text for c in backend.generate(prompts[i : i + 2 * batch], max_new_tokens))
    seconds = time.perf_counter() - start
    parsed = sum(bool(re.search(r"\[\[[ABC]\]\]", t)) for t in texts)
    generated = sum(len(tok.encode(t, add_special_tokens=False)) for t in texts)
    return seconds, parsed, generated


def reset_prefix_cache(backend: Backend) -> None:
    """Start a mode with vLLM's prefix cache empty, so no mode reuses another's prompts."""
    llm = getattr(backend, "llm", None)
    if llm is not None:
        llm.reset_prefix_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="pairs per engine call")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="baseline's limit")
    args = parser.parse_args()

    backend = load_backend(args.backend, args.model, Settings())
    loaded = load_pairs(args.pairs + 4)
    items, warm = loaded[: args.pairs], loaded[args.pairs :]  # warm up on other pairs
    run_logprob(backend, warm, "both", args.batch)
    run_generated(backend, warm[:1], args.batch, 8)

    reset_prefix_cache(backend)
    one = run_logprob(backend, items, "one", args.batch)
    reset_prefix_cache(backend)  # the first order of each pair must not come from the cache
    both = run_logprob(backend, items, "both", args.batch)
    reset_prefix_cache(backend)
    generated, parsed, n_tokens = run_generated(backend, items, args.batch, args.max_new_tokens)
    n = len(items)
    tok = backend.tokenizer
    conv = sum(len(tok.encode(i.prompt, add_special_tokens=False)) for i in items) / n
    resp = sum(len(tok.encode(r, add_special_tokens=False)) for i in items for r in i.responses) / n
    print(f"backend={args.backend} model={args.model} pairs={n} batch={args.batch}")
    print(
        f"per pair: conversation {conv:.0f} tokens, the two responses {resp:.0f}: both orders "
        f"repeat only the responses, so at best they cost {(conv + 2 * resp) / (conv + resp):.2f}x "
        "one order (before the shared system text and rubric)"
    )
    print(f"{'mode':<34}{'seconds':>9}{'pairs/s':>10}")
    for name, secs in [
        ("logprob verdicts, both orders", both),
        ("logprob verdicts, one order", one),
        ("generated verdicts, both orders", generated),
    ]:
        print(f"{name:<34}{secs:>9.2f}{n / secs:>10.2f}")
    print(
        f"baseline: {n_tokens} tokens generated ({n_tokens / (2 * n):.0f} per order), "
        f"{parsed}/{2 * n} verdicts parsed"
    )
    print(
        json.dumps(
            {
                "speedup_vs_generated": round(generated / both, 2),
                "both_orders_cost": round(both / one, 3),
                "backend": args.backend,
                "model": args.model,
                "pairs": n,
                "logprob_both_pairs_per_s": round(n / both, 3),
                "generated_pairs_per_s": round(n / generated, 3),
            }
        )
    )
    backend.close()


if __name__ == "__main__":
    main()
