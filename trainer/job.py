"""The trainer's only database-aware part: a training job's data, progress, artifacts and ack.

`arbiter worker train` claims training jobs through the shared queue; each job reads its
rows through the export (same filters), splits them by prompt, trains with `trainer.train`,
reports progress into the job as it goes (a cancel stops training at the next step), and
leaves a folder: the model, metrics.json, and manifest.json naming the exact label ids and
the full configuration.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.config import Settings
from service.db import utcnow
from service.domain.exports import ExportSummary, export_rows
from service.domain.jobs import record_job_result, report_progress, train_export_options
from service.models import Job, JobStatus, Project
from service.worker import JobConfigError
from trainer.config import LoraSpec, SpecError, TrainSpec, check_spec
from trainer.formats import DataError, check_rows, kto_balance, split_by_prompt, to_dataset
from trainer.train import run_training

log = logging.getLogger(__name__)

_REPORT_EVERY_SECONDS = 1.0


def spec_from_config(config: dict[str, Any]) -> TrainSpec:
    """The training spec a job's config describes."""
    lora = config.get("lora")
    return TrainSpec(
        kind=config["method"],
        model=config["model"],
        learning_rate=config["learning_rate"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        gradient_accumulation_steps=config["gradient_accumulation_steps"],
        max_length=config["max_length"],
        beta=config["beta"],
        loss_type=config["loss_type"],
        desirable_weight=config["desirable_weight"],
        undesirable_weight=config["undesirable_weight"],
        lora=LoraSpec(r=lora["r"], alpha=lora["alpha"], dropout=lora["dropout"]) if lora else None,
        precompute_ref_log_probs=config["precompute_ref_log_probs"],
        group_by_length=config["group_by_length"],
        bf16=config.get("bf16", True),
        shared_prompt=config.get("shared_prompt", True),
        eval_fraction=config["eval_fraction"],
        seed=config["seed"],
    )


def job_rows(session: Session, job: Job) -> list[dict[str, Any]]:
    """The job's training rows, read through the export with the job's data filters."""
    project = session.get_one(Project, job.project_id)
    opts = train_export_options(job.config)
    return list(export_rows(session, project, opts, ExportSummary()))


def manifest(
    job: Job, spec: TrainSpec, train: list[dict[str, Any]], held: list[dict[str, Any]]
) -> dict[str, Any]:
    """What trained the model, exactly: label ids, data split, configuration, versions."""
    rows = train + held

    def ids(*sources: str) -> list[int]:
        return sorted({i for r in rows if r["source"] in sources for i in r["label_ids"]})

    return {
        "job_id": job.id,
        "project_id": job.project_id,
        "created_at": utcnow().isoformat(),
        "config": job.config,
        "spec": spec.to_dict(),
        "data": {
            "rows": len(rows),
            "train_rows": len(train),
            "eval_rows": len(held),
            "train_prompts": len({r["prompt"] for r in train}),
            "eval_prompts": len({r["prompt"] for r in held}),
            "human_label_ids": ids("human"),
            "ai_label_ids": ids("ai", "constitution"),  # both are AI labels' ids
        },
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "trl", "peft")},
    }


class _Reporter:
    """Writes progress into the job at most once a second; says when the job was cancelled."""

    def __init__(self, factory: sessionmaker[Session], job_id: int, base: dict[str, Any]) -> None:
        self.factory, self.job_id, self.metrics = factory, job_id, dict(base)
        self.last = 0.0
        self.cancelled = False

    def __call__(self, step: int, total: int, logs: dict[str, float]) -> bool:
        self.metrics |= {"step": step, "total_steps": total}
        if logs:
            prefix = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            self.metrics[prefix] = {**self.metrics.get(prefix, {}), **logs}
        if time.monotonic() - self.last >= _REPORT_EVERY_SECONDS or logs:
            self.last = time.monotonic()
            with self.factory() as session:
                status = report_progress(session, self.job_id, self.metrics)
            self.cancelled = status == JobStatus.cancelled
        return self.cancelled


class TrainHandler:
    """Runs one claimed training job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, factory: sessionmaker[Session], worker_id: str, claim: queue.Claim) -> None:
        """Train, write the artifact folder, and ack with the final metrics."""
        with factory() as session:
            job = session.get_one(Job, claim.job_id)
            if job.status == JobStatus.cancelled:
                return
            rows = job_rows(session, job)
        spec = spec_from_config(job.config)
        try:
            check_spec(spec)
            check_rows(rows, spec.kind, min_rows=job.config["min_pairs"])
        except (SpecError, DataError) as exc:
            raise JobConfigError(str(exc)) from exc
        train, held = split_by_prompt(rows, spec.eval_fraction, spec.seed)
        out = (self.settings.artifacts_dir / f"job-{job.id}").resolve()
        base: dict[str, Any] = {"artifacts_dir": str(out)}
        if spec.kind == "kto":
            balance = kto_balance(train, spec.desirable_weight, spec.undesirable_weight)
            base["kto_balance"] = {"ratio": balance.ratio, "advised": balance.advised}
        reporter = _Reporter(factory, job.id, base)
        result = run_training(
            spec,
            to_dataset(train, spec.kind),
            to_dataset(held, spec.kind) if held else None,
            out,
            reporter,
        )
        if reporter.cancelled:  # a half-trained model is not an artifact
            log.info("job %s cancelled during training", job.id, extra={"job_id": job.id})
            shutil.rmtree(out, ignore_errors=True)
            return
        metrics = {**reporter.metrics, "final": result.metrics}
        _write_json(out / "metrics.json", metrics)
        _write_json(out / "manifest.json", manifest(job, spec, train, held))
        with factory() as session:
            record_job_result(session, worker_id, job.id, [u.id for u in claim.units], metrics)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
