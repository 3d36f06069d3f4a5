"""Identity and API keys."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from service.api.deps import CurrentUser, DbDep, KeyCacheDep, RequireAdmin, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import auth
from service.domain.pagination import decode_cursor, next_cursor
from service.models import ApiKey, Role, User
from service.schemas.common import Page
from service.schemas.keys import KeyCreate, KeyCreated, KeyOut, Me

router = APIRouter(prefix="/v1", tags=["keys"], responses=ERROR_RESPONSES)


def _key_out(key: ApiKey, user: User) -> KeyOut:
    return KeyOut(
        id=key.id,
        user=user.name,
        role=user.role,
        prefix=key.prefix,
        description=key.description,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.get("/me")
async def me(user: CurrentUser) -> Me:
    """Who the caller is."""
    return Me(id=user.user_id, name=user.name, role=user.role)


def _create(session: Session, user: str, role: Role, description: str | None) -> KeyCreated:
    key, owner, secret = auth.create_key(session, user, role, description)
    return KeyCreated(**_key_out(key, owner).model_dump(), key=secret)


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, _: RequireAdmin, db: DbDep) -> KeyCreated:
    """Create an API key for a user (the user is created with the role on first use)."""
    return await db.run(_create, body.user, body.role, body.description)


def _list(session: Session, after_id: int, limit: int) -> Page[KeyOut]:
    rows = auth.list_keys(session, after_id, limit)
    return Page(
        data=[_key_out(k, u) for k, u in rows],
        next_cursor=next_cursor([k.id for k, _ in rows], limit),
    )


@router.get("/keys")
async def list_keys(
    _: RequireAdmin,
    db: DbDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[KeyOut]:
    """Every key (never the secrets), in creation order."""
    return await db.run(_list, decode_cursor(cursor), min(limit, settings.page_size_max))


def _revoke(session: Session, key_id: int, cache: auth.KeyCache) -> KeyOut:
    return _key_out(*auth.revoke_key(session, key_id, cache))


@router.delete("/keys/{key_id}")
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    _: RequireAdmin,
    db: DbDep,
    cache: KeyCacheDep,
) -> KeyOut:
    """Revoke a key; it stops working at once here and within the auth cache TTL elsewhere."""
    return await db.run(_revoke, key_id, cache)
