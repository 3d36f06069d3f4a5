"""Jobs: start AI labeling, constitution chains and training; watch, cancel, read outputs."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from service.api.deps import DbDep, RequireOperator, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import jobs as domain
from service.domain import revisions
from service.domain.pagination import decode_cursor, next_cursor
from service.models import ChainStatus, Job, JobKind, JobStatus
from service.schemas.common import Page
from service.schemas.constitutions import RevisionChainOut, StepOut
from service.schemas.jobs import ArtifactFile, ArtifactsOut, JobIn, JobOut, JobProgress

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _outs(session: Session, jobs: list[Job]) -> list[JobOut]:
    return [
        JobOut(
            id=s.job.id,
            kind=s.job.kind.value,
            project_id=s.job.project_id,
            status=s.job.status.value,
            config=s.job.config,
            progress=JobProgress(
                total=s.job.total_units,
                **{status.value: n for status, n in s.counts.items()},
                attempts=s.attempts,
            ),
            error=s.job.error,
            metrics=s.job.metrics,
            created_at=s.job.created_at,
            started_at=s.job.started_at,
            finished_at=s.job.finished_at,
        )
        for s in domain.job_states(session, jobs)
    ]


_STARTS = {
    "judge": domain.start_judge_job,
    "constitution": revisions.start_constitution_job,
    "train": domain.start_train_job,
}


def _start(session: Session, body: JobIn, user_id: int) -> JobOut:
    job = _STARTS[body.kind](
        session,
        project_id=body.project_id,
        config=body.config.model_dump(mode="json"),
        created_by_id=user_id,
    )
    return _outs(session, [job])[0]


@router.post("", status_code=201)
async def start_job(body: JobIn, user: RequireOperator, db: DbDep) -> JobOut:
    """Start a job; workers of its kind pick up its work."""
    return await db.run(_start, body, user.user_id)


def _list(session: Session, after_id: int, limit: int, **filters: object) -> Page[JobOut]:
    jobs = domain.list_jobs(session, after_id, limit, **filters)  # type: ignore[arg-type]
    return Page(data=_outs(session, jobs), next_cursor=next_cursor([j.id for j in jobs], limit))


@router.get("")
async def list_jobs(
    _: RequireOperator,
    db: DbDep,
    settings: SettingsDep,
    project_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[JobOut]:
    """Jobs in creation order, with progress."""
    return await db.run(
        _list,
        decode_cursor(cursor),
        min(limit, settings.page_size_max),
        project_id=project_id,
        kind=kind,
        status=status,
    )


def _get(session: Session, job_id: int) -> JobOut:
    return _outs(session, [domain.get_job(session, job_id)])[0]


@router.get("/{job_id}")
async def get_job(job_id: JobId, _: RequireOperator, db: DbDep) -> JobOut:
    """A job: status, progress, attempts, error, metrics."""
    return await db.run(_get, job_id)


def _cancel(session: Session, job_id: int) -> JobOut:
    return _outs(session, [domain.cancel_job(session, job_id)])[0]


def _artifacts(session: Session, job_id: int) -> ArtifactsOut:
    root, files, manifest, metrics = domain.job_artifacts(domain.get_job(session, job_id))
    return ArtifactsOut(
        job_id=job_id,
        directory=str(root),
        files=[ArtifactFile(path=p, bytes=n) for p, n in files],
        manifest=manifest,
        metrics=metrics,
    )


@router.get("/{job_id}/artifacts")
async def job_artifacts(job_id: JobId, _: RequireOperator, db: DbDep) -> ArtifactsOut:
    """A finished training job's outputs: model files, metrics and the manifest."""
    return await db.run(_artifacts, job_id)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: JobId, _: RequireOperator, db: DbDep) -> JobOut:
    """Cancel a queued or running job; results that arrive later are dropped."""
    return await db.run(_cancel, job_id)


def _revisions(
    session: Session, job_id: int, after_id: int, limit: int, status: ChainStatus | None
) -> Page[RevisionChainOut]:
    views = revisions.list_chains(session, job_id, after_id, limit, status)
    return Page(
        data=[
            RevisionChainOut(
                id=v.chain.id,
                job_id=v.chain.job_id,
                response_id=v.chain.response_id,
                original=v.original,
                status=v.chain.status.value,
                final_revision=v.final_revision,
                final_response_id=v.chain.final_response_id,
                pair_item_id=v.chain.pair_item_id,
                p_confirmed=v.chain.p_confirmed,
                constitution=v.constitution,
                model=v.chain.model,
                backend=v.chain.backend,
                generation=v.chain.generation,
                steps=[StepOut(**s.__dict__) for s in v.steps],
                created_at=v.chain.created_at,
            )
            for v in views
        ],
        next_cursor=next_cursor([v.chain.id for v in views], limit),
    )


@router.get("/{job_id}/revisions")
async def job_revisions(
    job_id: JobId,
    _: RequireOperator,
    db: DbDep,
    settings: SettingsDep,
    status: ChainStatus | None = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[RevisionChainOut]:
    """A constitution job's chains: every round's principle, critique and revision, each
    marked usable or why not (empty, looping, too_long, unchanged), and what came of it."""
    return await db.run(
        _revisions, job_id, decode_cursor(cursor), min(limit, settings.page_size_max), status
    )
