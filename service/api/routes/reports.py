"""Judge quality reports of a project."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.api.deps import DbDep, RequireOperator
from service.api.errors import ERROR_RESPONSES
from service.api.routes.projects import ProjectId
from service.domain.judge_reports import judge_reports
from service.domain.projects import get_project
from service.schemas.reports import JudgeReportsOut

router = APIRouter(prefix="/v1/projects", tags=["reports"], responses=ERROR_RESPONSES)


def _reports(session: Session, project_id: int, job_id: int | None) -> JudgeReportsOut:
    get_project(session, project_id)
    return JudgeReportsOut.model_validate(
        {"judges": [asdict(r) for r in judge_reports(session, project_id, job_id)]}
    )


@router.get("/{project_id}/reports/judges")
async def judge_quality(
    project_id: ProjectId,
    _: RequireOperator,
    db: DbDep,
    job_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> JudgeReportsOut:
    """AI-human agreement, position bias before debiasing, position consistency, tie rate."""
    return await db.run(_reports, project_id, job_id)
