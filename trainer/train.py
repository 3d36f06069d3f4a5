"""Reward-model, DPO and KTO training on TRL's trainers: datasets in, a model folder out.

Independent of the web app and the database, so the same code runs standalone
(`arbiter train`), as a job (`trainer.job`), and under `accelerate launch` on many GPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate.utils import is_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.kto_config import KTOConfig
from trl.trainer.kto_trainer import KTOTrainer
from trl.trainer.reward_config import RewardConfig
from trl.trainer.reward_trainer import RewardTrainer

from trainer.config import TrainSpec
from trainer.shared_prefix import SharedPrefixCollator, share_prefixes, supports_shared_prefix

log = logging.getLogger(__name__)

# Called with (step, total steps, latest logged metrics); returning True stops training.
ProgressHook = Callable[[int, int, dict[str, float]], bool]


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and the final metrics."""

    model_dir: Path
    metrics: dict[str, float]
    stopped_early: bool


class _Progress(TrainerCallback):
    def __init__(self, hook: ProgressHook | None) -> None:
        self.hook = hook
        self.stopped = False

    def _report(self, state: TrainerState, control: TrainerControl, logs: dict[str, float]) -> None:
        if self.hook is not None and self.hook(state.global_step, state.max_steps, logs):
            self.stopped = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        self._report(state, control, dict(logs or {}))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._report(state, control, {})


def bf16_supported() -> bool:
    """bf16 mixed precision pays: a GPU with bf16, or a CPU with native bf16 (AVX512-BF16, AMX)."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _common_args(spec: TrainSpec, out_dir: Path, has_eval: bool) -> dict[str, Any]:
    on_gpu = torch.cuda.is_available()
    args: dict[str, Any] = {
        "output_dir": str(out_dir / "checkpoints"),
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "epoch" if has_eval else "no",
        "logging_steps": spec.logging_steps,
        "per_device_train_batch_size": spec.batch_size,
        "per_device_eval_batch_size": spec.batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
        "num_train_epochs": spec.epochs,
        "learning_rate": spec.learning_rate,
        "seed": spec.seed,
        "max_length": spec.max_length,
        "use_cpu": not on_gpu,
        "bf16": spec.bf16 and bf16_supported(),
    }
    return {**args, **spec.extra}


class _LengthGrouped:
    """Batches of similar length (shuffled anew each epoch), from the tokenized rows' lengths.

    transformers infers lengths only from an `input_ids` column; TRL's preference datasets
    hold `prompt_ids`, `chosen_ids`, ... instead, so the lengths are computed here.
    """

    arbiter_lengths: list[int] | None = None

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.arbiter_lengths is None:
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        args: Any = self.args  # type: ignore[attr-defined]
        return LengthGroupedSampler(
            args.train_batch_size * args.gradient_accumulation_steps, lengths=self.arbiter_lengths
        )


class _RewardTrainer(_LengthGrouped, RewardTrainer):
    pass


class _DPOTrainer(_LengthGrouped, DPOTrainer):
    """TRL's DPO trainer; given a `SharedPrefixCollator`, each pair's prompt is computed once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._share_prefixes()

    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        self._share_prefixes()  # TRL precomputes inside its __init__, after adding its LM head
        return super()._precompute_ref_logps(dataset, name, batch_size)

    def _share_prefixes(self) -> None:
        if not isinstance(self.data_collator, SharedPrefixCollator):
            return
        model: Any = self.model
        policy = model.get_base_model() if is_peft_model(model) else model
        # The per-token fields TRL asks its fused LM head for, policy and reference
        fields = ("log_probs", "entropy", "mean_logits", "is_top1")
        share_prefixes(policy, fields + (("log_sum_sq_probs",) if self.use_weighting else ()))
        if self.ref_model is not None:
            # Inside FSDP/DeepSpeed wrappers; accelerate's mixed-precision forward is bypassed,
            # so the pass enters the autocast itself
            reference = self.accelerator.unwrap_model(self.ref_model)
            share_prefixes(reference, ("log_probs",), self.accelerator.autocast)


class _KTOTrainer(_LengthGrouped, KTOTrainer):
    pass


def _group_by_length(trainer: Any) -> None:
    dataset = trainer.train_dataset
    id_columns = [c for c in dataset.column_names if c.endswith("ids")]
    trainer.arbiter_lengths = [
        sum(len(row[c]) for c in id_columns) for row in dataset.select_columns(id_columns)
    ]


def _peft_config(spec: TrainSpec) -> Any:
    if spec.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules,
        task_type="SEQ_CLS" if spec.kind == "rm" else "CAUSAL_LM",
    )


def _tokenizer(model: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _trainer(
    spec: TrainSpec,
    train: datasets.Dataset,
    evaluation: datasets.Dataset | None,
    out_dir: Path,
    callback: TrainerCallback,
) -> Any:
    tokenizer = _tokenizer(spec.model)
    common = _common_args(spec, out_dir, evaluation is not None)
    kwargs = {
        "train_dataset": train,
        "eval_dataset": evaluation,
        "processing_class": tokenizer,
        "callbacks": [callback],
        "peft_config": _peft_config(spec),
    }
    # Weights stay float32 on the CPU (bf16 there is autocast); GPUs load them in bf16.
    dtype = torch.bfloat16 if common["bf16"] and torch.cuda.is_available() else torch.float32
    if spec.kind == "rm":
        model = AutoModelForSequenceClassification.from_pretrained(
            spec.model, num_labels=1, dtype=dtype
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        return _RewardTrainer(model=model, args=RewardConfig(**common), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=dtype)
    preference: dict[str, Any] = {
        "beta": spec.beta,
        "precompute_ref_log_probs": spec.precompute_ref_log_probs,
    }
    if spec.kind == "dpo":
        loss_type: Any = spec.loss_type  # TRL types it as a list; one name is accepted too
        dpo = DPOConfig(**common, **preference, loss_type=loss_type)
        return _DPOTrainer(
            model=model,
            args=dpo,
            data_collator=_dpo_collator(spec, dpo, model, tokenizer),
            **kwargs,
        )
    kto = KTOConfig(
        **common,
        **preference,
        desirable_weight=spec.desirable_weight,
        undesirable_weight=spec.undesirable_weight,
    )
    return _KTOTrainer(model=model, args=kto, **kwargs)


def _dpo_collator(
    spec: TrainSpec, dpo: DPOConfig, model: Any, tokenizer: PreTrainedTokenizerBase
) -> SharedPrefixCollator | None:
    """Shared-prompt rows when the spec asks and the model can take them; None: TRL's own."""
    if not spec.shared_prompt:
        return None
    unsupported = supports_shared_prefix(model, dpo.truncation_mode)
    if unsupported is not None:
        log.info("each pair's prompt is computed twice, as in TRL: %s", unsupported)
        return None
    return SharedPrefixCollator(
        pad_token_id=tokenizer.pad_token_id,
        max_length=dpo.max_length,
        truncation_mode=dpo.truncation_mode,
        pad_to_multiple_of=int(dpo.pad_to_multiple_of) if dpo.pad_to_multiple_of else None,
    )


def run_training(
    spec: TrainSpec,
    train: datasets.Dataset,
    evaluation: datasets.Dataset | None,
    out_dir: str | Path,
    on_progress: ProgressHook | None = None,
) -> TrainResult:
    """Train, evaluate, and save the model (and tokenizer) to `out_dir/model`."""
    out_dir = Path(out_dir)
    callback = _Progress(on_progress)
    trainer = _trainer(spec, train, evaluation, out_dir, callback)
    if spec.group_by_length:
        _group_by_length(trainer)
    output = trainer.train()
    metrics = {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}
    if evaluation is not None and not callback.stopped:
        metrics |= {k: float(v) for k, v in trainer.evaluate().items()}
    model_dir = out_dir / "model"
    trainer.save_model(str(model_dir))
    trainer.processing_class.save_pretrained(str(model_dir))
    return TrainResult(model_dir, metrics, callback.stopped)
