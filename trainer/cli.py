"""`arbiter train rm|dpo|kto` (standalone, on an export file) and `arbiter worker train`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from service.config import get_settings
from service.models import JobKind
from service.worker import run_worker_process
from trainer.config import DPO_LOSSES, LoraSpec, SpecError, TrainKind, TrainSpec, check_spec

# The commands import torch, TRL and datasets when they run, not when `arbiter` starts: every
# `arbiter` command (`serve` too) loads this module to list its commands.


def train(
    kind: Annotated[str, typer.Argument(help="rm, dpo or kto")],
    data: Annotated[Path, typer.Option(help="An Arbiter export (JSONL or Parquet)")],
    model: Annotated[str, typer.Option(help="Base model folder")],
    out: Annotated[Path, typer.Option(help="Output folder (model/, metrics.json, manifest.json)")],
    epochs: float = 1.0,
    learning_rate: float = 5e-6,
    batch_size: int = 8,
    max_length: int = 1024,
    beta: Annotated[float, typer.Option(help="DPO / KTO beta")] = 0.1,
    loss_type: Annotated[str, typer.Option(help=f"DPO loss: {', '.join(DPO_LOSSES)}")] = "sigmoid",
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    lora_r: Annotated[int, typer.Option(help="LoRA rank; 0 trains all weights")] = 0,
    precompute_ref_log_probs: bool = True,
    group_by_length: bool = True,
    bf16: Annotated[bool, typer.Option(help="Mixed precision where the hardware has bf16")] = True,
    shared_prompt: Annotated[
        bool, typer.Option(help="DPO: one pass over each pair's prompt for both completions")
    ] = True,
    eval_fraction: float = 0.1,
    seed: int = 0,
) -> None:
    """Train a reward model (rm), or a policy with DPO or KTO, on an export file."""
    from trainer.formats import (
        DataError,
        check_rows,
        kto_balance,
        read_rows,
        split_by_prompt,
        to_dataset,
    )
    from trainer.train import run_training

    spec = TrainSpec(
        kind=kind,  # type: ignore[arg-type]
        model=model,
        learning_rate=learning_rate,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        beta=beta,
        loss_type=loss_type,
        desirable_weight=desirable_weight,
        undesirable_weight=undesirable_weight,
        lora=LoraSpec(r=lora_r, alpha=2 * lora_r) if lora_r else None,
        precompute_ref_log_probs=precompute_ref_log_probs,
        group_by_length=group_by_length,
        bf16=bf16,
        shared_prompt=shared_prompt,
        eval_fraction=eval_fraction,
        seed=seed,
    )
    rows = read_rows(data)
    try:
        check_spec(spec)
        if not (Path(model) / "config.json").is_file():
            raise SpecError(f"no model folder (with config.json) at {model}", "model")
        check_rows(rows, _kind(kind))
    except (SpecError, DataError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    train_rows, held = split_by_prompt(rows, spec.eval_fraction, spec.seed)
    if kind == "kto":
        kto_balance(train_rows, desirable_weight, undesirable_weight)
    result = run_training(
        spec,
        to_dataset(train_rows, spec.kind),
        to_dataset(held, spec.kind) if held else None,
        out,
        None,
    )
    manifest = {
        "spec": spec.to_dict(),
        "data": {
            "file": str(data.resolve()),
            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
            "rows": len(rows),
            "train_rows": len(train_rows),
            "eval_rows": len(held),
        },
    }
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, sort_keys=True) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    typer.echo(json.dumps({k: v for k, v in result.metrics.items() if k.startswith("eval_")}))
    typer.echo(f"model -> {result.model_dir}")


def _kind(kind: str) -> TrainKind:
    if kind not in ("rm", "dpo", "kto"):
        raise SpecError(f"unknown kind {kind!r}: rm, dpo or kto", "kind")
    return kind  # type: ignore[return-value]


def worker_train(
    worker_id: Annotated[str, typer.Option(help="Name in leases and logs [host:pid:train]")] = "",
    lease_seconds: Annotated[float, typer.Option(min=1, help="Lease, renewed by heartbeat")] = 60.0,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="Wait when idle")] = 2.0,
    exit_when_idle: Annotated[bool, typer.Option(help="Stop when no work is left")] = False,
) -> None:
    """Claim training jobs from the database and run them, one at a time."""
    from trainer.job import TrainHandler

    settings = get_settings()
    name, jobs = run_worker_process(
        JobKind.train,
        TrainHandler(settings),
        settings,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=1,
        exit_when_idle=exit_when_idle,
    )
    typer.echo(f"worker {name} stopped after {jobs} jobs")
