"""Jobs: what an operator asks for (a discriminated union on `kind`) and what GET shows."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from service.schemas.common import NoNulStr, RequestBody

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class ItemSelector(RequestBody):
    """Which of the project's items a job covers (all by default)."""

    item_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None, max_length=30_000, description="Only these items."
    )
    tag: NoNulStr | None = Field(default=None, max_length=200, description="Only items so tagged.")
    limit: int | None = Field(default=None, ge=1, le=10_000_000, description="At most this many.")
    skip_ai_labeled: bool = Field(
        default=False, description="Leave out items an earlier judge job has already labeled."
    )


_PLACEHOLDERS = {"system": ("{rubric}",), "pairwise": ("{prompt}", "{first}", "{second}")}
_PLACEHOLDERS["binary"] = ("{prompt}", "{response}")


class JudgeTemplateIn(RequestBody):
    """A project's own judge template: texts with named fields, like the shipped TOML files."""

    name: Name
    rubric: NoNulStr = Field(default="", max_length=20_000)
    system: NoNulStr = Field(max_length=20_000, description="Contains {rubric}.")
    pairwise: NoNulStr = Field(
        max_length=20_000, description="Contains {prompt}, {first} and {second}."
    )
    binary: NoNulStr = Field(max_length=20_000, description="Contains {prompt} and {response}.")
    chain_of_thought: NoNulStr = Field(default="", max_length=20_000)

    @model_validator(mode="after")
    def _fields_named(self) -> "JudgeTemplateIn":
        for key, needed in _PLACEHOLDERS.items():
            for placeholder in needed:
                if placeholder not in getattr(self, key):
                    raise ValueError(f"{key} must contain {placeholder}")
        return self


class ModelConfig(RequestBody):
    """Which LLM a worker loads: backend and model (and, for openai, the server)."""

    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model: NoNulStr = Field(
        default="smollm2",
        min_length=1,
        max_length=500,
        description="'smollm2' (the packaged default), a local model folder, or for openai "
        "the model name the server serves.",
    )
    base_url: NoNulStr | None = Field(
        default=None, max_length=500, description="openai backend: e.g. http://host:8000/v1"
    )
    tokenizer: NoNulStr | None = Field(
        default=None,
        max_length=500,
        description="openai backend: the served model's tokenizer (packaged name or local "
        "folder), when `model` is not one",
    )


class JudgeConfig(ModelConfig):
    """How to judge: backend, model, template, orders, chain of thought, batching."""

    template: Name = Field(default="helpfulness", description="A judge template name.")
    custom_template: JudgeTemplateIn | None = Field(
        default=None, description="A template of the project's own, in place of `template`."
    )
    rubric: NoNulStr | None = Field(
        default=None, max_length=20_000, description="Replaces the template's own rubric."
    )
    orders: Literal["both", "one"] = Field(
        default="both", description="Judge each pair in both orders (position-swap debiasing)."
    )
    chain_of_thought: bool = Field(
        default=False, description="Generate a rationale before reading the verdict token."
    )
    cot_max_tokens: int = Field(default=256, ge=1, le=8192)
    tie_band: float = Field(
        default=0.05, ge=0, le=0.5, description="|P(A>B) - 0.5| at most this is a tie."
    )
    batch_size: int = Field(default=16, ge=1, le=4096, description="Items per claimed batch.")
    max_attempts: int = Field(default=3, ge=1, le=100)
    items: ItemSelector = Field(default_factory=ItemSelector)


class JudgeJobIn(RequestBody):
    """Start AI labeling of a project's items."""

    kind: Literal["judge"]
    project_id: int = Field(ge=1, le=2**31 - 1)
    config: JudgeConfig = Field(default_factory=JudgeConfig)


class ResponseSelector(RequestBody):
    """Which responses a constitution job revises: those of the selected items."""

    item_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None, max_length=30_000, description="Only these items' responses."
    )
    tag: NoNulStr | None = Field(default=None, max_length=200, description="Only items so tagged.")
    positions: list[Annotated[int, Field(ge=0, le=49)]] | None = Field(
        default=None,
        max_length=50,
        description="Only the responses at these positions of each item (0 is A); all by default.",
    )
    limit: int | None = Field(default=None, ge=1, le=10_000_000, description="At most this many.")
    include_constitutional: bool = Field(
        default=False, description="Also revise the responses of constitutional pair items."
    )
    skip_revised: bool = Field(
        default=False,
        description="Leave out responses an earlier constitution job revised (a chain that "
        "ended with a usable revision; unrevised and rejected ones are tried again).",
    )


class ConfirmIn(RequestBody):
    """Ask the judge whether each revision beats its original; keep only pairs it confirms."""

    template: Name = Field(default="harmlessness", description="A judge template name.")
    rubric: NoNulStr | None = Field(default=None, max_length=20_000)
    orders: Literal["both", "one"] = "both"
    tie_band: float = Field(
        default=0.05, ge=0, le=0.5, description="P(revision better) must exceed 0.5 + this."
    )


class ConstitutionConfig(ModelConfig):
    """Critique -> revision chains: constitution, rounds, generation settings, outputs."""

    constitution: Name = Field(default="arbiter-default", description="A constitution's name.")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Latest if unset.")
    principles: list[Name] | None = Field(
        default=None, max_length=100, description="Sample only these principles (by name)."
    )
    rounds: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Critique -> revision rounds per response, each on a principle sampled "
        "(seeded, without repeats while any is left); a round that yields no usable "
        "revision ends the chain.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_tokens: int = Field(
        default=256, ge=1, le=8192, description="Most tokens generated per critique or revision."
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="0: greedy.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    responses: ResponseSelector = Field(default_factory=ResponseSelector)
    pairs_project_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="A pairwise project for the (revision, original) pairs; the job's own by "
        "default, which must then be pairwise.",
    )
    confirm: ConfirmIn | None = Field(
        default=None, description="Judge each revision against its original (the RLAIF step)."
    )
    batch_size: int = Field(default=8, ge=1, le=4096, description="Responses per claimed batch.")
    max_attempts: int = Field(default=3, ge=1, le=100)


class ConstitutionJobIn(RequestBody):
    """Start critique -> revision chains over a project's responses."""

    kind: Literal["constitution"]
    project_id: int = Field(ge=1, le=2**31 - 1)
    config: ConstitutionConfig = Field(default_factory=ConstitutionConfig)


Constitutional = Literal["include", "exclude", "only"]


class TrainData(RequestBody):
    """Which labels train the model: the export's filters."""

    source: Literal["human", "ai", "both"] = "human"
    min_agreement: float | None = Field(default=None, ge=0, le=1)
    min_votes: int = Field(default=1, ge=1, le=1000)
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    position_consistent_only: bool = False
    judge_job_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    include_imported: bool = True
    tag: NoNulStr | None = Field(default=None, max_length=200)
    constitutional: Constitutional = Field(
        default="include", description="Constitutional (revision > original) pairs: in, out, only."
    )


class LoraIn(RequestBody):
    """LoRA adapters (peft) instead of full fine-tuning."""

    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.05, ge=0, lt=1)


class TrainConfig(RequestBody):
    """A training run: method, base model, hyperparameters and data filters."""

    method: Literal["rm", "dpo", "kto"]
    model: NoNulStr = Field(min_length=1, max_length=500, description="A local model folder.")
    learning_rate: float = Field(default=5e-6, gt=0, le=1)
    epochs: float = Field(default=1.0, gt=0, le=100)
    batch_size: int = Field(default=8, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    max_length: int = Field(default=1024, ge=8, le=131072)
    beta: float = Field(default=0.1, gt=0, le=100, description="DPO / KTO temperature.")
    loss_type: Literal[
        "sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero"
    ] = "sigmoid"
    desirable_weight: float = Field(default=1.0, gt=0, le=100, description="KTO lambda_D.")
    undesirable_weight: float = Field(default=1.0, gt=0, le=100, description="KTO lambda_U.")
    lora: LoraIn | None = None
    precompute_ref_log_probs: bool = True
    group_by_length: bool = True
    bf16: bool = Field(default=True, description="Mixed precision where the hardware has bf16.")
    shared_prompt: bool = Field(
        default=True, description="DPO: one pass over each pair's prompt for both completions."
    )
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    min_pairs: int = Field(default=8, ge=1, description="Refuse to start with fewer rows.")
    max_attempts: int = Field(default=1, ge=1, le=10)
    data: TrainData = Field(default_factory=TrainData)


class TrainJobIn(RequestBody):
    """Train a reward model, or a policy with DPO or KTO, on a project's labels."""

    kind: Literal["train"]
    project_id: int = Field(ge=1, le=2**31 - 1)
    config: TrainConfig


JobIn = Annotated[JudgeJobIn | ConstitutionJobIn | TrainJobIn, Field(discriminator="kind")]


class ArtifactFile(BaseModel):
    """A file a job left."""

    path: str
    bytes: int


class ArtifactsOut(BaseModel):
    """A finished training job's folder: the model, metrics.json and manifest.json."""

    job_id: int
    directory: str
    files: list[ArtifactFile]
    manifest: dict[str, Any] | None
    metrics: dict[str, Any] | None


class JobProgress(BaseModel):
    """Work rows of the job by status."""

    total: int
    queued: int
    running: int
    done: int
    dead: int
    cancelled: int
    attempts: int = Field(description="Claims made so far, retries included.")


class JobOut(BaseModel):
    """A job: its request, where it stands, and its outcome."""

    id: int
    kind: str
    project_id: int | None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    config: dict[str, Any]
    progress: JobProgress
    error: str | None
    metrics: dict[str, Any]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
