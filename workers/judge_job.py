"""The judge worker's batch handler: load the items, judge them, store verdicts with the ack."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.config import Settings
from service.domain.judgments import JudgeIdentity, job_config, load_judge_items, record_judge_batch
from service.models import JobStatus
from service.worker import JobConfigError
from workers.backends import BackendCache
from workers.judge import Judge, JudgeSettings
from workers.prompts import JudgeTemplate, TemplateError, custom_template, load_template


def judge_settings(config: dict[str, Any]) -> JudgeSettings:
    """The judging settings a job's config asks for."""
    try:
        if config.get("custom_template"):
            template: JudgeTemplate = custom_template(config["custom_template"])
        else:
            template = load_template(config.get("template", "helpfulness"))
    except TemplateError as exc:
        raise JobConfigError(f"config.template: {exc}") from exc
    if config.get("rubric"):
        template = template.with_rubric(config["rubric"])
    return JudgeSettings(
        template=template,
        orders=config.get("orders", "both"),
        chain_of_thought=bool(config.get("chain_of_thought", False)),
        cot_max_tokens=int(config.get("cot_max_tokens", 256)),
        tie_band=float(config.get("tie_band", 0.05)),
    )


class JudgeHandler:
    """Judges claimed batches; keeps loaded models between batches."""

    def __init__(self, backends: BackendCache | None = None) -> None:
        self.backends = backends or BackendCache(Settings())

    def __call__(self, factory: sessionmaker[Session], worker_id: str, claim: queue.Claim) -> None:
        """Judge one batch and store it (only for rows this worker still holds)."""
        with factory() as session:
            job, config = job_config(session, claim.job_id)
            if job.status == JobStatus.cancelled:
                return
            items = load_judge_items(session, [u.payload["item_id"] for u in claim.units])
        settings = judge_settings(config)
        backend = self.backends.get(config)
        # An item deleted since the job started has nothing to judge: its row is just acked.
        units = [
            (u.id, items[u.payload["item_id"]])
            for u in claim.units
            if u.payload["item_id"] in items
        ]
        try:
            verdicts = Judge(backend, settings).judge(units) if units else []
        except TemplateError as exc:
            raise JobConfigError(f"config.template: {exc}") from exc
        identity = JudgeIdentity(
            model=config["model"], backend=backend.name, template=settings.template.identity
        )
        with factory() as session:
            record_judge_batch(
                session, worker_id, claim.job_id, identity, verdicts, [u.id for u in claim.units]
            )
