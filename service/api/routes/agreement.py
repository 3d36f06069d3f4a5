"""Inter-annotator agreement of a project."""

from dataclasses import asdict

from fastapi import APIRouter

from service.api.deps import RequireOperator, SessionDep
from service.api.errors import ERROR_RESPONSES
from service.api.routes.projects import ProjectId
from service.domain.agreement import agreement_report
from service.domain.projects import get_project
from service.schemas.agreement import AgreementOut

router = APIRouter(prefix="/v1/projects", tags=["agreement"], responses=ERROR_RESPONSES)


@router.get("/{project_id}/agreement")
def agreement(project_id: ProjectId, _: RequireOperator, session: SessionDep) -> AgreementOut:
    """Cohen's kappa (two annotators), Krippendorff's alpha, and each annotator vs the majority."""
    get_project(session, project_id)
    return AgreementOut.model_validate(asdict(agreement_report(session, project_id)))
