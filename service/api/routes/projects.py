"""Projects."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from service.api.deps import CurrentUser, DbDep, RequireOperator, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import projects as domain
from service.domain.pagination import decode_cursor, next_cursor
from service.models import Project
from service.schemas.common import Page
from service.schemas.projects import ProjectCreate, ProjectOut, ProjectUpdate

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ERROR_RESPONSES)

ProjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def project_out(session: Session, project: Project) -> ProjectOut:
    """A project with its progress counts."""
    progress = domain.project_progress(session, [project.id])[project.id]
    return ProjectOut.model_validate(project, from_attributes=True).model_copy(
        update=progress.__dict__
    )


def _create(session: Session, **fields: Any) -> ProjectOut:
    return project_out(session, domain.create_project(session, **fields))


@router.post("", status_code=201)
async def create_project(
    body: ProjectCreate, user: RequireOperator, db: DbDep, settings: SettingsDep
) -> ProjectOut:
    """Create a project."""
    return await db.run(
        _create,
        name=body.name,
        kind=body.kind,
        overlap=body.overlap,
        lease_seconds=body.lease_seconds or settings.default_lease_seconds,
        instructions=body.instructions,
        created_by_id=user.user_id,
    )


def _list(session: Session, after_id: int, limit: int) -> Page[ProjectOut]:
    projects = domain.list_projects(session, after_id, limit)
    progress = domain.project_progress(session, [p.id for p in projects])
    return Page(
        data=[
            ProjectOut.model_validate(p, from_attributes=True).model_copy(
                update=progress[p.id].__dict__
            )
            for p in projects
        ],
        next_cursor=next_cursor([p.id for p in projects], limit),
    )


@router.get("")
async def list_projects(
    _: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[ProjectOut]:
    """Projects in creation order, with progress."""
    return await db.run(_list, decode_cursor(cursor), min(limit, settings.page_size_max))


def _get(session: Session, project_id: int) -> ProjectOut:
    return project_out(session, domain.get_project(session, project_id))


@router.get("/{project_id}")
async def get_project(project_id: ProjectId, _: CurrentUser, db: DbDep) -> ProjectOut:
    """One project with its settings and progress."""
    return await db.run(_get, project_id)


def _update(session: Session, project_id: int, **changes: Any) -> ProjectOut:
    return project_out(session, domain.update_project(session, project_id, **changes))


@router.patch("/{project_id}")
async def update_project(
    project_id: ProjectId, body: ProjectUpdate, _: RequireOperator, db: DbDep
) -> ProjectOut:
    """Change a project's name, overlap, lease or instructions."""
    return await db.run(_update, project_id, **body.model_dump(exclude_unset=True))
