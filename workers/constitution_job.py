"""The constitution worker's batch handler: load the responses, run the chains (and the judge,
if asked), store chains and pairs with the ack."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.config import Settings
from service.domain.constitutions import get_constitution_by_id
from service.domain.judgments import job_config
from service.domain.revision_results import ReviserIdentity, record_revision_batch
from service.domain.revisions import load_revision_inputs
from service.models import Constitution, Job, JobStatus
from service.worker import JobConfigError
from workers.backends import BackendCache
from workers.backends.base import Sampling
from workers.constitution import PrincipleSpec, Reviser, ReviseSettings, confirm_revisions
from workers.judge import JudgeSettings
from workers.judge_job import judge_settings
from workers.prompts import TemplateError


def revise_settings(config: dict[str, Any], constitution: Constitution) -> ReviseSettings:
    """The chain settings a job's config asks for, on its constitution version."""
    wanted = config.get("principles")
    principles = tuple(
        PrincipleSpec(p.id, p.name, p.critique_request, p.revision_request)
        for p in constitution.principles
        if wanted is None or p.name in wanted
    )
    if not principles:
        raise JobConfigError("config.principles: none of them is in the constitution")
    return ReviseSettings(
        principles=principles,
        rounds=int(config.get("rounds", 2)),
        seed=int(config.get("seed", 0)),
        max_tokens=int(config.get("max_tokens", 256)),
        sampling=Sampling(
            temperature=float(config.get("temperature", 0.0)),
            top_p=float(config.get("top_p", 1.0)),
            seed=int(config.get("seed", 0)),
        ),
    )


def confirm_settings(confirm: dict[str, Any]) -> JudgeSettings:
    """The judge settings of a job's `confirm`, checked before any model runs."""
    try:
        return judge_settings(confirm)
    except JobConfigError as exc:  # its message names config.<field>: name confirm's
        raise JobConfigError(str(exc).replace("config.", "config.confirm.", 1)) from exc


class ConstitutionHandler:
    """Revises claimed batches; keeps loaded models between batches."""

    def __init__(self, backends: BackendCache | None = None) -> None:
        self.backends = backends or BackendCache(Settings())

    def __call__(self, factory: sessionmaker[Session], worker_id: str, claim: queue.Claim) -> None:
        """Revise one batch and store it (only for rows this worker still holds)."""
        with factory() as session:
            job, config = job_config(session, claim.job_id)
            if job.status == JobStatus.cancelled:
                return
            constitution = get_constitution_by_id(session, config["constitution_id"])
            sources = load_revision_inputs(session, [u.payload["response_id"] for u in claim.units])
        settings = revise_settings(config, constitution)
        confirm = confirm_settings(config["confirm"]) if config.get("confirm") else None
        backend = self.backends.get(config)
        # A response deleted since the job started has nothing to revise: its row is just acked.
        units = [
            (u.id, sources[u.payload["response_id"]])
            for u in claim.units
            if u.payload["response_id"] in sources
        ]

        def cancelled() -> bool:
            with factory() as session:
                status = session.scalar(select(Job.status).where(Job.id == claim.job_id))
            return status != JobStatus.running

        chains = Reviser(backend, settings).revise(units, should_stop=cancelled)
        if confirm is not None:
            try:
                chains = confirm_revisions(backend, confirm, chains, sources)
            except TemplateError as exc:  # e.g. verdicts that tokenize alike for this model
                raise JobConfigError(f"config.confirm.template: {exc}") from exc
        identity = ReviserIdentity(
            model=config["model"],
            backend=backend.name,
            constitution_id=constitution.id,
            constitution=f"{constitution.name}@{constitution.version}",
            generation={**settings.record(), "confirm": config.get("confirm")},
        )
        with factory() as session:
            record_revision_batch(
                session,
                worker_id,
                claim.job_id,
                identity,
                sources,
                chains,
                [u.id for u in claim.units],
            )
