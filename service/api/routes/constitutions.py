"""Constitutions: create, edit (each edit is a new version), read a version, list."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.orm import Session

from service.api.deps import CurrentUser, DbDep, RequireOperator, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import constitutions as domain
from service.domain.pagination import decode_cursor, next_cursor
from service.models import Constitution
from service.schemas.common import Page
from service.schemas.constitutions import (
    ConstitutionContent,
    ConstitutionIn,
    ConstitutionOut,
    PrincipleOut,
)

router = APIRouter(prefix="/v1/constitutions", tags=["constitutions"], responses=ERROR_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


def constitution_out(constitution: Constitution) -> ConstitutionOut:
    """A version with its principles in order."""
    return ConstitutionOut(
        id=constitution.id,
        name=constitution.name,
        version=constitution.version,
        description=constitution.description,
        principles=[
            PrincipleOut(
                id=p.id,
                name=p.name,
                critique_request=p.critique_request,
                revision_request=p.revision_request,
            )
            for p in constitution.principles
        ],
        created_at=constitution.created_at,
    )


def _texts(body: ConstitutionContent) -> list[domain.PrincipleText]:
    return [
        domain.PrincipleText(p.name, p.critique_request, p.revision_request)
        for p in body.principles
    ]


def _create(session: Session, body: ConstitutionIn, user_id: int) -> ConstitutionOut:
    created = domain.create_constitution(
        session,
        name=body.name,
        description=body.description,
        principles=_texts(body),
        created_by_id=user_id,
    )
    return constitution_out(created)


@router.post("", status_code=201)
async def create_constitution(
    body: ConstitutionIn, user: RequireOperator, db: DbDep
) -> ConstitutionOut:
    """Create a constitution (its version 1)."""
    return await db.run(_create, body, user.user_id)


def _update(
    session: Session, name: str, body: ConstitutionContent, user_id: int
) -> tuple[ConstitutionOut, bool]:
    version, created = domain.update_constitution(
        session,
        name,
        description=body.description,
        principles=_texts(body),
        created_by_id=user_id,
    )
    return constitution_out(version), created


@router.put(
    "/{name}",
    responses={201: {"model": ConstitutionOut, "description": "A new version was written"}},
)
async def update_constitution(
    name: Name, body: ConstitutionContent, user: RequireOperator, db: DbDep, response: Response
) -> ConstitutionOut:
    """Edit a constitution: writes its next version (201), or, when nothing changed, returns
    the latest (200). Earlier versions stay as they were."""
    out, created = await db.run(_update, name, body, user.user_id)
    response.status_code = 201 if created else 200
    return out


def _list(session: Session, after_id: int, limit: int) -> Page[ConstitutionOut]:
    found = domain.list_constitutions(session, after_id, limit)
    return Page(
        data=[constitution_out(c) for c in found],
        next_cursor=next_cursor([c.id for c in found], limit),
    )


@router.get("")
async def list_constitutions(
    _: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[ConstitutionOut]:
    """The latest version of every constitution."""
    return await db.run(_list, decode_cursor(cursor), min(limit, settings.page_size_max))


def _get(session: Session, name: str, version: int | None) -> ConstitutionOut:
    return constitution_out(domain.get_constitution(session, name, version))


@router.get("/{name}")
async def get_constitution(name: Name, _: CurrentUser, db: DbDep) -> ConstitutionOut:
    """A constitution's latest version."""
    return await db.run(_get, name, None)


def _versions(session: Session, name: str) -> list[ConstitutionOut]:
    return [constitution_out(c) for c in domain.list_versions(session, name)]


@router.get("/{name}/versions")
async def list_versions(name: Name, _: CurrentUser, db: DbDep) -> list[ConstitutionOut]:
    """Every version of a constitution, oldest first."""
    return await db.run(_versions, name)


@router.get("/{name}/versions/{version}")
async def get_version(name: Name, version: Version, _: CurrentUser, db: DbDep) -> ConstitutionOut:
    """One version of a constitution."""
    return await db.run(_get, name, version)
