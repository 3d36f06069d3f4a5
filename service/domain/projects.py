"""Projects: create, read with progress, list, change settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import begin_write
from service.errors import Conflict, NotFound
from service.models import FeedbackKind, HumanLabel, Item, Project


@dataclass(frozen=True)
class ProjectProgress:
    """Counts shown beside a project."""

    items_total: int
    items_complete: int
    labels_total: int


def create_project(
    session: Session,
    *,
    name: str,
    kind: FeedbackKind,
    overlap: int,
    lease_seconds: int,
    instructions: str,
    created_by_id: int,
) -> Project:
    """Create a project; names are unique."""
    begin_write(session)
    project = Project(
        name=name,
        kind=kind,
        overlap=overlap,
        lease_seconds=lease_seconds,
        instructions=instructions,
        created_by_id=created_by_id,
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a project named {name!r} already exists", "name") from exc
    session.commit()
    return project


def get_project(session: Session, project_id: int) -> Project:
    """The project, or NotFound."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found", "project_id")
    return project


def project_progress(session: Session, project_ids: list[int]) -> dict[int, ProjectProgress]:
    """Item and label counts for each project id."""
    items = session.execute(
        select(
            Item.project_id,
            func.count(),
            func.count().filter(Item.is_complete.is_(True)),
        )
        .where(Item.project_id.in_(project_ids))
        .group_by(Item.project_id)
    ).all()
    labels = dict(
        session.execute(
            select(HumanLabel.project_id, func.count())
            .where(HumanLabel.project_id.in_(project_ids))
            .group_by(HumanLabel.project_id)
        ).all()
    )
    counts = {pid: (total, done) for pid, total, done in items}
    return {
        pid: ProjectProgress(
            items_total=counts.get(pid, (0, 0))[0],
            items_complete=counts.get(pid, (0, 0))[1],
            labels_total=labels.get(pid, 0),
        )
        for pid in project_ids
    }


def list_projects(session: Session, after_id: int, limit: int) -> list[Project]:
    """Projects in id order after a cursor."""
    return list(
        session.scalars(
            select(Project).where(Project.id > after_id).order_by(Project.id).limit(limit)
        )
    )


def update_project(
    session: Session,
    project_id: int,
    *,
    name: str | None = None,
    overlap: int | None = None,
    lease_seconds: int | None = None,
    instructions: str | None = None,
) -> Project:
    """Change a project's settings; raising overlap reopens items that now need more labels."""
    begin_write(session)
    project = get_project(session, project_id)
    if name is not None:
        project.name = name
    if lease_seconds is not None:
        project.lease_seconds = lease_seconds
    if instructions is not None:
        project.instructions = instructions
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a project named {name!r} already exists", "name") from exc
    if overlap is not None and overlap != project.overlap:
        project.overlap = overlap
        session.execute(
            update(Item)
            .where(Item.project_id == project_id)
            .values(is_complete=Item.label_count >= overlap)
        )
    session.commit()
    return project
