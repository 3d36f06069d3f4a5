"""The training core on tiny random-weight models: each method learns a simple preference.

Chosen responses thank the user; rejected ones refuse. Prompts never straddle train and eval.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TinyModels
from trainer.config import LoraSpec, SpecError, TrainSpec, check_spec
from trainer.formats import DataError, check_rows, kto_balance, split_by_prompt, to_dataset
from trainer.train import run_training

pytestmark = pytest.mark.slow


def preference_rows(n: int = 80) -> list[dict[str, Any]]:
    """Pairs where the chosen response has a property the rejected one lacks."""
    return [
        {
            "prompt": f"Question {i}: tell me about item {i % 7}.",
            "chosen": f"Thank you very much. Item {i % 7} is fine.",
            "rejected": f"No. Sorry {i}.",
        }
        for i in range(n)
    ]


def kto_rows(n: int = 80) -> list[dict[str, Any]]:
    """Desirable and undesirable completions with the same property split."""
    rows = []
    for r in preference_rows(n):
        rows.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
        rows.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
    return rows


def _train(kind: str, rows: list[dict[str, Any]], model: Path, out: Path, **spec: Any) -> Any:
    settings = {"learning_rate": 1e-3, "epochs": 3, "batch_size": 8, "max_length": 128, **spec}
    train, held = split_by_prompt(rows, 0.2, 0)
    full = TrainSpec(kind=kind, model=str(model), **settings)  # type: ignore[arg-type]
    return run_training(full, to_dataset(train, kind), to_dataset(held, kind), out)  # type: ignore[arg-type]


def test_the_reward_model_reaches_90_percent_eval_accuracy(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    result = _train("rm", preference_rows(), tiny_models.causal_lm, tmp_path)
    assert result.metrics["eval_accuracy"] >= 0.9
    assert (result.model_dir / "config.json").is_file()


def test_dpo_reaches_90_percent_eval_reward_accuracy(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    result = _train("dpo", preference_rows(), tiny_models.causal_lm, tmp_path)
    assert result.metrics["eval_rewards/accuracies"] >= 0.9
    assert result.metrics["eval_rewards/margins"] > 0


def test_dpo_with_the_ipo_loss_and_trl_reference_pass_learns_too(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    result = _train(
        "dpo",
        preference_rows(),
        tiny_models.causal_lm,
        tmp_path,
        loss_type="ipo",
        precompute_ref_log_probs=False,
        group_by_length=False,
    )
    assert result.metrics["eval_rewards/accuracies"] >= 0.9


def test_kto_moves_desirable_rewards_above_undesirable(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    result = _train("kto", kto_rows(), tiny_models.causal_lm, tmp_path, epochs=2)
    assert result.metrics["eval_rewards/chosen"] > result.metrics["eval_rewards/rejected"]


def test_lora_saves_an_adapter_that_learned(tiny_models: TinyModels, tmp_path: Path) -> None:
    result = _train(
        "dpo",
        preference_rows(),
        tiny_models.causal_lm,
        tmp_path,
        lora=LoraSpec(r=8, alpha=16, dropout=0.0),
        learning_rate=5e-3,
    )
    assert (result.model_dir / "adapter_config.json").is_file()
    assert result.metrics["eval_rewards/margins"] > 0


def test_no_prompt_is_in_both_train_and_eval() -> None:
    rows = preference_rows(200) + preference_rows(200)  # every prompt twice
    train, held = split_by_prompt(rows, 0.25, seed=3)
    assert {r["prompt"] for r in train}.isdisjoint({r["prompt"] for r in held})
    assert len(train) + len(held) == 400 and 50 < len(held) < 150


def test_kto_balance_outside_the_papers_range_warns(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"label": True}] * 10 + [{"label": False}] * 2
    with caplog.at_level(logging.WARNING):
        balance = kto_balance(rows, 1.0, 1.0)
    assert balance.ratio == 5.0 and not balance.advised
    assert "outside [1, 4/3]" in caplog.text
    assert kto_balance(rows, 1.0, 4.0).advised  # 10 / (4 * 2) = 1.25


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "dpo", "beta": 0.0}, "beta"),
        ({"kind": "kto", "beta": -1.0}, "beta"),
        ({"kind": "dpo", "loss_type": "magic"}, "loss_type"),
        ({"kind": "rm", "learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as refused:
        check_spec(TrainSpec(model="m", **spec))
    assert refused.value.field == field


def test_kto_refuses_pairwise_rows_and_too_few_rows() -> None:
    with pytest.raises(DataError, match="prompt/completion/label"):
        check_rows(preference_rows(10), "kto")
    with pytest.raises(DataError, match="at least 4"):
        check_rows(preference_rows(2), "dpo")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from service.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_the_cli_trains_from_an_export_file(tiny_models: TinyModels, tmp_path: Path) -> None:
    data = tmp_path / "export.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in preference_rows(40)))
    out = tmp_path / "run"
    done = _cli(
        *("train", "rm", "--data", str(data), "--model", str(tiny_models.causal_lm)),
        *("--out", str(out), "--epochs", "1", "--learning-rate", "1e-3", "--max-length", "64"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model" / "config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["rows"] == 40 and manifest["spec"]["kind"] == "rm"
    assert "eval_accuracy" in json.loads((out / "metrics.json").read_text())


def test_the_cli_refuses_an_unknown_model_path(tmp_path: Path) -> None:
    data = tmp_path / "export.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in preference_rows(10)))
    done = _cli(
        *("train", "dpo", "--data", str(data), "--model", str(tmp_path / "nope")),
        *("--out", str(tmp_path / "o")),
    )
    assert done.returncode == 2
    assert "no model folder" in done.stderr
