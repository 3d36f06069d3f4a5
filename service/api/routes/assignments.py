"""Annotators: lease the next item, submit a label, skip, see progress."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from service.api.deps import CurrentUser, DbDep
from service.api.errors import ERROR_RESPONSES
from service.api.presenters import assignment_out, label_out
from service.api.routes.projects import ProjectId
from service.domain import assignment as domain
from service.domain.labels import LabelInput, submit_label
from service.models import FeedbackKind
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


def label_input(body: LabelIn) -> LabelInput:
    """A submitted label as the domain takes it."""
    return LabelInput(
        kind=FeedbackKind(body.kind),
        value=body.model_dump(exclude={"kind", "rationale"}),
        rationale=body.rationale,
    )


@router.post(
    "/v1/projects/{project_id}/assignments",
    responses={204: {"description": "No item is left for you in this project"}},
)
async def lease_next(
    project_id: ProjectId, user: CurrentUser, db: DbDep, response: Response
) -> AssignmentOut | None:
    """Lease your next item (or get back your current lease); 204 when none is left."""
    lease = await db.quick(domain.lease_next, project_id, user.user_id)
    if lease is None:
        response.status_code = 204
        return None
    return assignment_out(lease)


@router.get("/v1/projects/{project_id}/progress")
async def progress(project_id: ProjectId, user: CurrentUser, db: DbDep) -> Progress:
    """Your progress in a project: items you labeled, items still open to you."""
    done = await db.run(domain.progress, project_id, user.user_id)
    return Progress(done=done.done, remaining=done.remaining)


@router.get("/v1/assignments/{assignment_id}")
async def get_assignment(
    assignment_id: AssignmentId, user: CurrentUser, db: DbDep
) -> AssignmentOut:
    """One of your assignments."""
    return assignment_out(await db.quick(domain.get_lease, assignment_id, user.user_id))


@router.post(
    "/v1/assignments/{assignment_id}/labels",
    status_code=201,
    responses={200: {"model": LabelOut, "description": "A retry: the label stored earlier"}},
)
async def submit(
    assignment_id: AssignmentId,
    body: LabelIn,
    user: CurrentUser,
    db: DbDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> LabelOut:
    """Submit your label for an assignment (idempotent: a retry creates nothing).

    Common-case submits are answered before this route, by `service/api/quick_submit.py`.
    """
    stored, created = await db.quick(
        submit_label, assignment_id, (user.user_id, user.name), label_input(body), idempotency_key
    )
    if not created:
        response.status_code = 200
    return label_out(stored)


@router.post("/v1/assignments/{assignment_id}/skip")
async def skip(assignment_id: AssignmentId, user: CurrentUser, db: DbDep) -> AssignmentOut:
    """Give an item back; you will not be offered it again."""
    return assignment_out(await db.quick(domain.skip_assignment, assignment_id, user.user_id))
