"""Constitution throughput: critique -> revision chains batched vs one at a time.

One backend and one model, one run, on the rejected (less harmless) responses of HH-RLHF
pairs from ../shared/data, with Arbiter's default constitution:

  1. batched: every chain of the batch goes to the engine together, one call per step
     (all critiques of a round, then all revisions), as the constitution worker runs them;
  2. one at a time: the same chains, each on its own (a loop over responses, as a script
     calling the model per example does).

Both modes warm up on 2 other responses; vLLM's prefix cache is emptied before each timed
mode. Greedy decoding, --max-tokens per step, --rounds rounds. Prints a table (revisions/s,
generated tokens/s), then as its LAST line one JSON object:
{"batched_speedup": the smaller of the two ratios (revisions/s and tokens/s), batched over
 one at a time, ...}.

    .venv/bin/python bench/constitution_throughput.py                    # transformers, SmolLM2
    .venv/bin/python bench/constitution_throughput.py --backend vllm
    .venv/bin/python bench/constitution_throughput.py --responses 64
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

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.domain.constitutions import DEFAULT_CONSTITUTION, get_constitution
from service.domain.importers import split_hh_dialogue
from service.domain.revision_results import ChainResult
from service.domain.revisions import RevisionInput
from service.migrate import upgrade
from workers.backends import load_backend
from workers.backends.base import Backend
from workers.constitution import PrincipleSpec, Reviser, ReviseSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-sample.jsonl"


def default_principles() -> tuple[PrincipleSpec, ...]:
    """The shipped default constitution, read from a freshly migrated database."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            constitution = get_constitution(session, DEFAULT_CONSTITUTION)
            principles = tuple(
                PrincipleSpec(p.id, p.name, p.critique_request, p.revision_request)
                for p in constitution.principles
            )
        engine.dispose()
    return principles


def load_responses(n: int) -> list[tuple[int, RevisionInput]]:
    """The rejected responses of the first n HH-RLHF pairs, as chains' inputs."""
    out = []
    with DATA.open() as f:
        for line in f:
            row = json.loads(line)
            prompt, _, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
            out.append((len(out), RevisionInput(len(out), 1, 1, prompt, rejected, "hh-rlhf")))
            if len(out) == n:
                break
    return out


def reset_prefix_cache(backend: Backend) -> None:
    """Start a mode with vLLM's prefix cache empty, so no mode reuses another's prompts."""
    llm = getattr(backend, "llm", None)
    if llm is not None:
        llm.reset_prefix_cache()


def run(
    reviser: Reviser, units: list[tuple[int, RevisionInput]], batched: bool
) -> tuple[float, list[ChainResult]]:
    """Seconds to run the chains, and the chains."""
    reset_prefix_cache(reviser.backend)
    start = time.perf_counter()
    if batched:
        chains = reviser.revise(units)
    else:
        chains = [chain for unit in units for chain in reviser.revise([unit])]
    return time.perf_counter() - start, chains


def figures(seconds: float, chains: list[ChainResult]) -> dict[str, float]:
    """Revisions generated (usable or not), generated tokens, and their rates."""
    revisions = sum(s.revision_outcome is not None for c in chains for s in c.steps)
    tokens = sum(s.critique_tokens + s.revision_tokens for c in chains for s in c.steps)
    usable = sum(c.final_text is not None for c in chains)
    return {
        "seconds": seconds,
        "revisions": revisions,
        "usable": usable,
        "tokens": tokens,
        "revisions_per_s": revisions / seconds,
        "tokens_per_s": tokens / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--responses", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128, help="per critique or revision")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    settings = ReviseSettings(
        principles=default_principles(), rounds=args.rounds, max_tokens=args.max_tokens
    )
    backend = load_backend(args.backend, args.model, Settings())
    reviser = Reviser(backend, settings)
    loaded = load_responses(args.responses + 2)
    units, warm = loaded[: args.responses], loaded[args.responses :]
    reviser.revise(warm)
    reviser.revise(warm[:1])

    batched = figures(*run(reviser, units, batched=True))
    single = figures(*run(reviser, units, batched=False))
    print(
        f"backend={args.backend} model={args.model} responses={len(units)} "
        f"rounds={args.rounds} max_tokens={args.max_tokens} (greedy)"
    )
    header = ("mode", "seconds", "revisions", "usable", "tokens", "revisions/s", "tokens/s")
    print(f"{header[0]:<16}" + "".join(f"{h:>13}" for h in header[1:]))
    for name, f in (("batched", batched), ("one at a time", single)):
        print(
            f"{name:<16}{f['seconds']:>13.2f}{f['revisions']:>13}{f['usable']:>13}"
            f"{f['tokens']:>13}{f['revisions_per_s']:>13.3f}{f['tokens_per_s']:>13.1f}"
        )
    by_revisions = batched["revisions_per_s"] / single["revisions_per_s"]
    by_tokens = batched["tokens_per_s"] / single["tokens_per_s"]
    print(f"batched / one at a time: {by_revisions:.2f}x revisions/s, {by_tokens:.2f}x tokens/s")
    print(
        json.dumps(
            {
                "batched_speedup": round(min(by_revisions, by_tokens), 2),
                "revisions_per_s_ratio": round(by_revisions, 2),
                "tokens_per_s_ratio": round(by_tokens, 2),
                "backend": args.backend,
                "model": args.model,
                "responses": len(units),
                "batched_revisions_per_s": round(batched["revisions_per_s"], 3),
                "batched_tokens_per_s": round(batched["tokens_per_s"], 1),
                "single_revisions_per_s": round(single["revisions_per_s"], 3),
                "single_tokens_per_s": round(single["tokens_per_s"], 1),
            }
        )
    )
    backend.close()


if __name__ == "__main__":
    main()
