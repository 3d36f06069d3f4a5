"""Dependencies of every route, as Annotated aliases: sessions, settings, the caller, roles."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings, get_settings
from service.domain.auth import KeyCache, Principal, authenticate
from service.errors import Forbidden, Unauthorized
from service.models import Role

bearer = HTTPBearer(auto_error=False, description="An Arbiter API key: `Bearer arb_...`.")


def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory (set up in the lifespan)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_key_cache(request: Request) -> KeyCache:
    """The app's cache of verified keys."""
    cache: KeyCache = request.app.state.key_cache
    return cache


def get_session(
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
) -> Iterator[Session]:
    """A session for one request; domain functions commit, this only closes it."""
    session = factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]


def current_user(
    session: SessionDep,
    cache: KeyCacheDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <key>`."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", "Authorization")
    principal = authenticate(session, credentials.credentials, cache)
    # The lookup opened a read transaction; end it so the handler starts its own.
    session.rollback()
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


def require(role: Role):  # type: ignore[no-untyped-def]
    """A dependency admitting callers with `role` or above."""

    def check(user: CurrentUser) -> Principal:
        if not user.at_least(role):
            raise Forbidden(f"this needs the {role.value} role; you are {user.role.value}")
        return user

    return check


RequireOperator = Annotated[Principal, Depends(require(Role.operator))]
RequireAdmin = Annotated[Principal, Depends(require(Role.admin))]
