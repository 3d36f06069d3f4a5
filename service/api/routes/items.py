"""Operators' view of a project's items and labels."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.api.deps import DbDep, RequireOperator, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.api.presenters import item_out
from service.api.routes.projects import ProjectId
from service.domain.items import ItemFilter, list_items
from service.domain.pagination import decode_cursor, next_cursor
from service.domain.projects import get_project
from service.schemas.common import NoNulStr, Page
from service.schemas.items import ItemOut

router = APIRouter(prefix="/v1/projects", tags=["items"], responses=ERROR_RESPONSES)


def _page(
    session: Session, project_id: int, flt: ItemFilter, after_id: int, limit: int
) -> Page[ItemOut]:
    get_project(session, project_id)
    views = list_items(session, project_id, flt, after_id, limit)
    return Page(
        data=[item_out(v) for v in views], next_cursor=next_cursor([v.id for v in views], limit)
    )


@router.get("/{project_id}/items")
async def items(
    project_id: ProjectId,
    _: RequireOperator,
    db: DbDep,
    settings: SettingsDep,
    status: Literal["open", "complete"] | None = None,
    tag: Annotated[NoNulStr | None, Query(max_length=200)] = None,
    min_labels: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    external_id: Annotated[NoNulStr | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
) -> Page[ItemOut]:
    """A page of items with their responses and labels, filtered."""
    flt = ItemFilter(status=status, tag=tag, min_labels=min_labels, external_id=external_id)
    limit = min(limit, settings.page_size_max)
    return await db.run(_page, project_id, flt, decode_cursor(cursor), limit)
