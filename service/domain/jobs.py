"""Jobs: start (validate the request, select the work, enqueue it), read, list, cancel."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from service import queue
from service.db import SelectT, begin_write
from service.domain.exports import ExportOptions, ExportSummary, export_rows
from service.domain.projects import get_project
from service.errors import Conflict, Invalid, NotFound
from service.models import (
    AILabel,
    FeedbackKind,
    Import,
    Item,
    Job,
    JobKind,
    JobStatus,
    Project,
    WorkStatus,
    WorkUnit,
)

# Models workers know by name (they resolve them to a local folder); anything else is a path.
PACKAGED_MODELS = frozenset({"smollm2"})


@dataclass(frozen=True)
class JobState:
    """A job with its work rows counted by status."""

    job: Job
    counts: dict[WorkStatus, int]
    attempts: int


def _loadable(name: str) -> bool:
    return name in PACKAGED_MODELS or os.path.isfile(os.path.join(name, "config.json"))


def check_model(config: dict[str, Any]) -> None:
    """Refuse a model the workers cannot load, naming the config field.

    Local folders are checked on this host: give the API the workers' model folders (the
    docker-compose file mounts the same volume in both).
    """
    backend, model = config["backend"], config["model"]
    packaged = ", ".join(sorted(PACKAGED_MODELS))
    if backend == "openai":
        if not config.get("base_url"):
            raise Invalid("the openai backend needs base_url", "config.base_url")
        tokenizer = config.get("tokenizer") or model
        if not _loadable(tokenizer):
            raise Invalid(
                f"the openai backend renders prompts with a local tokenizer: {tokenizer!r} is "
                f"neither a packaged model ({packaged}) nor a model folder; set config.tokenizer",
                "config.tokenizer",
            )
        return
    for field in ("base_url", "tokenizer"):
        if config.get(field):
            raise Invalid(f"{field} is only for the openai backend", f"config.{field}")
    if not _loadable(model):
        raise Invalid(
            f"model {model!r} is neither a packaged model ({packaged}) nor a local model folder "
            "(with config.json)",
            "config.model",
        )


def visible_items(query: SelectT, project_id: int) -> SelectT:
    """`query` (which selects from items) limited to the project's items that jobs may see:
    not those of an import still running (or failed)."""
    return query.outerjoin(Import, Import.id == Item.import_id).where(
        Item.project_id == project_id,
        or_(Item.import_id.is_(None), Import.status.in_(("completed", "partial"))),
    )


def select_items(session: Session, project: Project, selector: dict[str, Any]) -> list[int]:
    """The ids of the project's items a job covers, in id order (items of running imports not)."""
    query = visible_items(select(Item.id, Item.tags), project.id).order_by(Item.id)
    if selector.get("item_ids") is not None:
        query = query.where(Item.id.in_(selector["item_ids"]))
    if selector.get("skip_ai_labeled"):
        query = query.where(~select(AILabel.id).where(AILabel.item_id == Item.id).exists())
    tag = selector.get("tag")
    ids = [i for i, tags in session.execute(query).all() if tag is None or tag in (tags or [])]
    if selector.get("limit") is not None:
        ids = ids[: selector["limit"]]
    return ids


def enqueue_job(
    session: Session,
    *,
    kind: JobKind,
    project: Project,
    config: dict[str, Any],
    created_by_id: int,
    payloads: list[dict[str, Any]],
) -> Job:
    """Create a job with one work row per payload, and commit: the end of every start_*."""
    job = Job(
        kind=kind,
        project_id=project.id,
        config=config,
        total_units=len(payloads),
        created_by_id=created_by_id,
    )
    session.add(job)
    session.flush()
    queue.enqueue(session, job, payloads, max_attempts=config["max_attempts"])
    session.commit()
    return job


def start_judge_job(
    session: Session, *, project_id: int, config: dict[str, Any], created_by_id: int
) -> Job:
    """Create an AI-labeling job and one work row per selected item, in one transaction."""
    check_model(config)
    begin_write(session)
    project = get_project(session, project_id)
    item_ids = select_items(session, project, config["items"])
    if not item_ids:
        raise Invalid("the selection matches no items of this project", "config.items")
    return enqueue_job(
        session,
        kind=JobKind.judge,
        project=project,
        config=config,
        created_by_id=created_by_id,
        payloads=[{"item_id": item_id} for item_id in item_ids],
    )


def train_export_options(config: dict[str, Any]) -> ExportOptions:
    """The export a training job's config reads its rows through (its `data` filters)."""
    data = config["data"]
    return ExportOptions(
        format="kto" if config["method"] == "kto" else "dpo",
        source=data["source"],
        include_imported=data["include_imported"],
        min_agreement=data.get("min_agreement"),
        min_votes=data["min_votes"],
        tag=data.get("tag"),
        min_confidence=data.get("min_confidence"),
        position_consistent_only=data["position_consistent_only"],
        judge_job_id=data.get("judge_job_id"),
        constitutional=data.get("constitutional", "include"),
    )


def _train_rows(session: Session, project: Project, config: dict[str, Any]) -> int:
    """How many export rows the training data filters select."""
    opts = train_export_options(config)
    try:
        return sum(1 for _ in export_rows(session, project, opts, ExportSummary()))
    except Invalid as exc:
        raise Invalid(exc.message, f"config.data.{exc.field}") from exc


def start_train_job(
    session: Session, *, project_id: int, config: dict[str, Any], created_by_id: int
) -> Job:
    """Create a training job after checking everything that can fail before training starts."""
    if not _loadable(config["model"]) or config["model"] in PACKAGED_MODELS:
        raise Invalid(f"no model folder (with config.json) at {config['model']!r}", "config.model")
    begin_write(session)
    project = get_project(session, project_id)
    method = config["method"]
    if method == "kto" and project.kind != FeedbackKind.binary:
        raise Invalid(
            f"kto trains on binary (up/down) labels; project {project.name!r} is "
            f"{project.kind.value}: use rm or dpo",
            "config.method",
        )
    if method != "kto" and project.kind == FeedbackKind.binary:
        raise Invalid(
            f"{method} trains on preference pairs; a binary project trains kto", "config.method"
        )
    rows = _train_rows(session, project, config)
    if rows < config["min_pairs"]:
        raise Invalid(
            f"the data filters select {rows} rows; this job needs at least {config['min_pairs']}",
            "config.data",
        )
    return enqueue_job(
        session,
        kind=JobKind.train,
        project=project,
        config=config,
        created_by_id=created_by_id,
        payloads=[{"rows": rows}],
    )


Json = dict[str, Any] | None


def job_artifacts(job: Job) -> tuple[Path, list[tuple[str, int]], Json, Json]:
    """A finished training job's folder, its files, manifest and metrics."""
    folder = (job.metrics or {}).get("artifacts_dir")
    if job.kind != JobKind.train:
        raise NotFound(
            f"job {job.id} is a {job.kind.value} job; only training jobs leave artifacts", "job_id"
        )
    if job.status != JobStatus.succeeded or not folder or not Path(folder).is_dir():
        raise Conflict(f"job {job.id} has no artifacts yet (it is {job.status.value})", "job_id")
    root = Path(folder)
    files = sorted(
        (str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file()
    )

    def read(name: str) -> Json:
        path = root / name
        return json.loads(path.read_text()) if path.is_file() else None

    return root, files, read("manifest.json"), read("metrics.json")


def report_progress(session: Session, job_id: int, metrics: dict[str, Any]) -> JobStatus:
    """Replace a running job's metrics (progress, losses); returns the job's status."""
    begin_write(session)
    session.execute(update(Job).where(Job.id == job_id).values(metrics=metrics))
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    session.commit()
    return status if status is not None else JobStatus.cancelled  # a deleted job: stop


def record_job_result(
    session: Session, worker_id: str, job_id: int, unit_ids: list[int], metrics: dict[str, Any]
) -> bool:
    """Ack a job's work with its final metrics, if the worker still holds it."""
    begin_write(session)
    held = queue.complete(session, worker_id, unit_ids)
    if held:
        session.execute(update(Job).where(Job.id == job_id).values(metrics=metrics))
        queue.settle_job(session, job_id)
    session.commit()
    return bool(held)


def get_job(session: Session, job_id: int) -> Job:
    """The job, or NotFound."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found", "job_id")
    return job


def job_states(session: Session, jobs: list[Job]) -> list[JobState]:
    """Jobs with their work rows counted by status."""
    ids = [j.id for j in jobs]
    counts: dict[int, dict[WorkStatus, int]] = {i: dict.fromkeys(WorkStatus, 0) for i in ids}
    attempts: dict[int, int] = dict.fromkeys(ids, 0)
    for job_id, status, n, tries in session.execute(
        select(WorkUnit.job_id, WorkUnit.status, func.count(), func.sum(WorkUnit.attempts))
        .where(WorkUnit.job_id.in_(ids))
        .group_by(WorkUnit.job_id, WorkUnit.status)
    ).all():
        counts[job_id][WorkStatus(status)] = n
        attempts[job_id] += int(tries or 0)
    return [JobState(j, counts[j.id], attempts[j.id]) for j in jobs]


def list_jobs(
    session: Session,
    after_id: int,
    limit: int,
    *,
    project_id: int | None = None,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
) -> list[Job]:
    """Jobs in id order after a cursor, filtered."""
    query = select(Job).where(Job.id > after_id)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query.order_by(Job.id).limit(limit)))


def cancel_job(session: Session, job_id: int) -> Job:
    """Cancel a queued or running job; cancelling a finished job is a conflict."""
    begin_write(session)
    job = get_job(session, job_id)
    cancelled = queue.cancel_job(session, job_id)
    if cancelled is None:
        session.rollback()
        job = get_job(session, job_id)
        raise Conflict(f"job {job_id} is already {job.status.value}", "job_id")
    session.commit()
    return cancelled
