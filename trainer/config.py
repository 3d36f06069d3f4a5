"""What a training run is: one spec for reward-model, DPO and KTO runs, with Arbiter's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TrainKind = Literal["rm", "dpo", "kto"]
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero")


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters (peft) instead of full fine-tuning."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass(frozen=True)
class TrainSpec:
    """A training run: the method, the base model, and its hyperparameters.

    Arbiter's speed defaults differ from TRL's: reference log-probs are computed once before
    training (`precompute_ref_log_probs`), batches group sequences of similar length
    (`group_by_length`), so little compute goes to padding, and bf16 mixed precision is on
    wherever the hardware has native bf16 (`bf16`; TRL uses it on GPUs only when asked, and
    never on CPUs). DPO computes each pair's prompt once for both completions and projects
    only completion positions through the LM head (`shared_prompt`; see
    `trainer.shared_prefix`).
    """

    kind: TrainKind
    model: str
    learning_rate: float = 5e-6
    epochs: float = 1.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    beta: float = 0.1  # DPO / KTO
    loss_type: str = "sigmoid"  # DPO: sigmoid, ipo, ...
    desirable_weight: float = 1.0  # KTO lambda_D
    undesirable_weight: float = 1.0  # KTO lambda_U
    lora: LoraSpec | None = None
    precompute_ref_log_probs: bool = True
    group_by_length: bool = True
    bf16: bool = True  # mixed precision where the hardware runs bf16 natively
    shared_prompt: bool = True  # DPO: one pass over a pair's prompt (TRL: one per completion)
    eval_fraction: float = 0.1
    seed: int = 0
    logging_steps: int = 5
    extra: dict[str, Any] = field(default_factory=dict)  # more TRL *Config arguments

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for manifests."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        """The spec a manifest or a job config describes."""
        lora = data.get("lora")
        return cls(**{**data, "lora": LoraSpec(**lora) if lora else None})


class SpecError(ValueError):
    """A spec that cannot train: the message names the field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_spec(spec: TrainSpec) -> None:
    """Refuse specs that cannot train, before any data is read or model loaded."""
    if spec.kind not in ("rm", "dpo", "kto"):
        raise SpecError(f"unknown kind {spec.kind!r}: rm, dpo or kto", "kind")
    if spec.kind in ("dpo", "kto") and not spec.beta > 0:
        raise SpecError("beta must be > 0", "beta")
    if spec.kind == "dpo" and spec.loss_type not in DPO_LOSSES:
        raise SpecError(f"loss_type must be one of {', '.join(DPO_LOSSES)}", "loss_type")
    if not spec.learning_rate > 0:
        raise SpecError("learning_rate must be > 0", "learning_rate")
    if not 0 <= spec.eval_fraction < 1:
        raise SpecError("eval_fraction must be in [0, 1)", "eval_fraction")
    if spec.desirable_weight <= 0 or spec.undesirable_weight <= 0:
        raise SpecError("KTO weights must be > 0", "desirable_weight")
