"""Dependencies of every route, as Annotated aliases: the database runner, the caller, roles.

A route is `async def` and does its database work in one threadpool call (`Db.run`, or
`Db.quick` for the annotators' hot path, which on SQLite runs on the event loop), which
opens a session, runs a domain function and closes the session in the same thread: one hop
per request, and a connection is never held across hops. The key check is a dictionary
lookup on the event loop unless the key is not cached yet.
"""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.domain.auth import KeyCache, Principal, authenticate, hash_key
from service.errors import Forbidden, Unauthorized
from service.models import Role

P = ParamSpec("P")
T = TypeVar("T")

bearer = HTTPBearer(auto_error=False, description="An Arbiter API key: `Bearer arb_...`.")


class Db:
    """Runs use cases in the threadpool, each with its own session."""

    def __init__(self, factory: sessionmaker[Session], *, quick_inline: bool = False) -> None:
        self.factory = factory
        self.quick_inline = quick_inline

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(session, *args, **kwargs)` here, in a fresh session that is then closed."""
        with self.factory() as session:
            return fn(session, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(session, *args, **kwargs)` in the threadpool with a fresh session."""
        return await run_in_threadpool(partial(self.call, fn, *args, **kwargs))

    async def quick(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Like `run`, for the annotators' short use cases (a lease, a submit: ~1 ms).

        With `quick_inline` (SQLite: in-process, nothing to wait for on a network) they run
        right here on the event loop: the thread hand-off costs more than the work.
        """
        if self.quick_inline:
            return self.call(fn, *args, **kwargs)
        return await self.run(fn, *args, **kwargs)


async def get_db(request: Request) -> Db:
    """The app's database runner (set up in the lifespan)."""
    db: Db = request.app.state.db
    return db


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_key_cache(request: Request) -> KeyCache:
    """The app's cache of verified keys."""
    cache: KeyCache = request.app.state.key_cache
    return cache


DbDep = Annotated[Db, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]


async def current_user(
    db: DbDep,
    cache: KeyCacheDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <key>`."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", "Authorization")
    cached = cache.get(hash_key(credentials.credentials))
    if cached is not None:
        return cached
    return await db.run(authenticate, credentials.credentials, cache)


CurrentUser = Annotated[Principal, Depends(current_user)]


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting callers with `role` or above."""

    async def check(user: CurrentUser) -> Principal:
        if not user.at_least(role):
            raise Forbidden(f"this needs the {role.value} role; you are {user.role.value}")
        return user

    return check


RequireOperator = Annotated[Principal, Depends(require(Role.operator))]
RequireAdmin = Annotated[Principal, Depends(require(Role.admin))]
