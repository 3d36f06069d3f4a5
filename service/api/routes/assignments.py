"""Annotators: lease the next item, submit a label, skip."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from service.api.deps import CurrentUser, SessionDep
from service.api.errors import ERROR_RESPONSES
from service.api.presenters import item_out
from service.api.routes.projects import ProjectId
from service.domain import assignment as domain
from service.domain.items import load_item_views
from service.domain.labels import LabelInput, submit_label
from service.domain.projects import get_project
from service.models import Assignment, FeedbackKind, Item, Project
from service.schemas.items import AssignmentOut, LabelOut, Progress
from service.schemas.labels import LabelIn

router = APIRouter(tags=["assignments"], responses=ERROR_RESPONSES)

AssignmentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Retries with the same key return the first result and create nothing.",
    ),
]


def _assignment_out(session: SessionDep, assignment: Assignment, project: Project) -> AssignmentOut:
    item = session.get(Item, assignment.item_id)
    assert item is not None
    (view,) = load_item_views(session, [item])
    progress = domain.progress(session, project, assignment.annotator_id)
    return AssignmentOut(
        id=assignment.id,
        project_id=assignment.project_id,
        status=assignment.status.value,
        leased_at=assignment.leased_at,
        lease_expires_at=assignment.lease_expires_at,
        instructions=project.instructions,
        item=item_out(view),
        progress=Progress(done=progress.done, remaining=progress.remaining),
    )


@router.post(
    "/v1/projects/{project_id}/assignments",
    responses={204: {"description": "No item is left for you in this project"}},
)
def lease_next(
    project_id: ProjectId, user: CurrentUser, session: SessionDep, response: Response
) -> AssignmentOut | None:
    """Lease your next item (or get back your current lease); 204 when none is left."""
    project = get_project(session, project_id)
    assignment = domain.lease_next(session, project, user.user_id)
    if assignment is None:
        response.status_code = 204
        return None
    return _assignment_out(session, assignment, project)


@router.get("/v1/assignments/{assignment_id}")
def get_assignment(
    assignment_id: AssignmentId, user: CurrentUser, session: SessionDep
) -> AssignmentOut:
    """One of your assignments."""
    assignment = domain.get_own_assignment(session, assignment_id, user.user_id)
    project = get_project(session, assignment.project_id)
    return _assignment_out(session, assignment, project)


@router.post(
    "/v1/assignments/{assignment_id}/labels",
    status_code=201,
    responses={200: {"model": LabelOut, "description": "A retry: the label stored earlier"}},
)
def submit(
    assignment_id: AssignmentId,
    body: LabelIn,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> LabelOut:
    """Submit your label for an assignment (idempotent: a retry creates nothing)."""
    value = body.model_dump(exclude={"kind", "rationale"})
    label, created = submit_label(
        session,
        assignment_id,
        user.user_id,
        LabelInput(kind=FeedbackKind(body.kind), value=value, rationale=body.rationale),
        idempotency_key,
    )
    if not created:
        response.status_code = 200
    return LabelOut(
        id=label.id,
        item_id=label.item_id,
        assignment_id=label.assignment_id,
        annotator=user.name,
        kind=label.kind,
        value=label.value,
        rationale=label.rationale,
        origin=label.origin.value,
        created_at=label.created_at,
    )


@router.post("/v1/assignments/{assignment_id}/skip")
def skip(assignment_id: AssignmentId, user: CurrentUser, session: SessionDep) -> AssignmentOut:
    """Give an item back; you will not be offered it again."""
    assignment = domain.skip_assignment(session, assignment_id, user.user_id)
    project = get_project(session, assignment.project_id)
    return _assignment_out(session, assignment, project)
