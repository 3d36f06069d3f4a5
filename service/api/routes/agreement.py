"""Inter-annotator agreement of a project."""

from dataclasses import asdict

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service.api.deps import DbDep, RequireOperator
from service.api.errors import ERROR_RESPONSES
from service.api.routes.projects import ProjectId
from service.domain.agreement import agreement_report
from service.domain.projects import get_project
from service.schemas.agreement import AgreementOut

router = APIRouter(prefix="/v1/projects", tags=["agreement"], responses=ERROR_RESPONSES)


def _report(session: Session, project_id: int) -> AgreementOut:
    get_project(session, project_id)
    return AgreementOut.model_validate(asdict(agreement_report(session, project_id)))


@router.get("/{project_id}/agreement")
async def agreement(project_id: ProjectId, _: RequireOperator, db: DbDep) -> AgreementOut:
    """Cohen's kappa (two annotators), Krippendorff's alpha, and each annotator vs the majority."""
    return await db.run(_report, project_id)
