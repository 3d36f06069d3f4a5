"""Projects."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.api.deps import CurrentUser, RequireOperator, SessionDep, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import projects as domain
from service.domain.pagination import decode_cursor, next_cursor
from service.models import Project
from service.schemas.common import Page
from service.schemas.projects import ProjectCreate, ProjectOut, ProjectUpdate

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ERROR_RESPONSES)

ProjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def project_out(project: Project, progress: domain.ProjectProgress) -> ProjectOut:
    """A project with its progress counts."""
    return ProjectOut.model_validate(project, from_attributes=True).model_copy(
        update=progress.__dict__
    )


@router.post("", status_code=201)
def create_project(
    body: ProjectCreate, user: RequireOperator, session: SessionDep, settings: SettingsDep
) -> ProjectOut:
    """Create a project."""
    project = domain.create_project(
        session,
        name=body.name,
        kind=body.kind,
        overlap=body.overlap,
        lease_seconds=body.lease_seconds or settings.default_lease_seconds,
        instructions=body.instructions,
        created_by_id=user.user_id,
    )
    return project_out(project, domain.ProjectProgress(0, 0, 0))


@router.get("")
def list_projects(
    _: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[ProjectOut]:
    """Projects in creation order, with progress."""
    limit = min(limit, settings.page_size_max)
    projects = domain.list_projects(session, decode_cursor(cursor), limit)
    progress = domain.project_progress(session, [p.id for p in projects])
    return Page(
        data=[project_out(p, progress[p.id]) for p in projects],
        next_cursor=next_cursor([p.id for p in projects], limit),
    )


@router.get("/{project_id}")
def get_project(project_id: ProjectId, _: CurrentUser, session: SessionDep) -> ProjectOut:
    """One project with its settings and progress."""
    project = domain.get_project(session, project_id)
    return project_out(project, domain.project_progress(session, [project.id])[project.id])


@router.patch("/{project_id}")
def update_project(
    project_id: ProjectId, body: ProjectUpdate, _: RequireOperator, session: SessionDep
) -> ProjectOut:
    """Change a project's name, overlap, lease or instructions."""
    project = domain.update_project(session, project_id, **body.model_dump(exclude_unset=True))
    return project_out(project, domain.project_progress(session, [project.id])[project.id])
