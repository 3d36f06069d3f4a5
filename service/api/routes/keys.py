"""Identity and API keys."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.api.deps import CurrentUser, KeyCacheDep, RequireAdmin, SessionDep, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.domain import auth
from service.domain.pagination import decode_cursor, next_cursor
from service.models import ApiKey, User
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
def me(user: CurrentUser) -> Me:
    """Who the caller is."""
    return Me(id=user.user_id, name=user.name, role=user.role)


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, _: RequireAdmin, session: SessionDep) -> KeyCreated:
    """Create an API key for a user (the user is created with the role on first use)."""
    key, user, secret = auth.create_key(session, body.user, body.role, body.description)
    return KeyCreated(**_key_out(key, user).model_dump(), key=secret)


@router.get("/keys")
def list_keys(
    _: RequireAdmin,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
) -> Page[KeyOut]:
    """Every key (never the secrets), in creation order."""
    limit = min(limit, settings.page_size_max)
    rows = auth.list_keys(session, decode_cursor(cursor), limit)
    return Page(
        data=[_key_out(k, u) for k, u in rows],
        next_cursor=next_cursor([k.id for k, _ in rows], limit),
    )


@router.delete("/keys/{key_id}")
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    _: RequireAdmin,
    session: SessionDep,
    cache: KeyCacheDep,
) -> KeyOut:
    """Revoke a key; it stops working at once here and within the auth cache TTL elsewhere."""
    key, user = auth.revoke_key(session, key_id, cache)
    return _key_out(key, user)
