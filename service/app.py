"""The FastAPI application: routers, error handlers and the database lifespan; nothing else."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from service import sqlite_wal, web
from service.api import errors
from service.api.deps import Db
from service.api.quick_submit import QuickSubmitRoute
from service.api.routes import (
    agreement,
    assignments,
    constitutions,
    exports,
    health,
    imports,
    items,
    jobs,
    keys,
    projects,
    reports,
)
from service.config import Settings, get_settings
from service.db import is_sqlite, make_engine, make_session_factory
from service.domain.auth import KeyCache
from service.domain.quick_submit import open_quick_submit

ROUTERS = (
    health,
    keys,
    projects,
    imports,
    items,
    assignments,
    agreement,
    exports,
    jobs,
    constitutions,
    reports,
)


def _background_checkpoint(settings: Settings) -> bool:
    """True where the server checkpoints SQLite's WAL itself (`service.sqlite_wal`)."""
    return (
        is_sqlite(settings.database_url)
        and settings.sqlite_background_checkpoint
        and settings.workers == 1
    )


async def _open_database(app: FastAPI, settings: Settings) -> None:
    """The engine, the use-case runner, the quick submit path and the WAL checkpointer."""
    background = _background_checkpoint(settings)
    wal_autocheckpoint = sqlite_wal.AUTOCHECKPOINT_BACKSTOP if background else None
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        wal_autocheckpoint=wal_autocheckpoint,
    )
    app.state.engine = engine
    app.state.db = Db(
        make_session_factory(engine),
        quick_inline=settings.sqlite_quick_inline and is_sqlite(settings.database_url),
    )
    # SQLite's runs on the event loop: only where leases and submits already do.
    inline = app.state.db.quick_inline or not is_sqlite(settings.database_url)
    if settings.quick_submit and inline:
        app.state.quick_submit = await open_quick_submit(
            engine, settings.db_pool_size, settings.sqlite_busy_timeout_ms, wal_autocheckpoint
        )
    if background:
        app.state.checkpointer = sqlite_wal.WalCheckpointer(engine)
        app.state.checkpointer.start()


async def _close_database(app: FastAPI) -> None:
    try:
        if getattr(app.state, "quick_submit", None) is not None:
            await app.state.quick_submit.close()
    finally:
        if hasattr(app.state, "checkpointer"):
            app.state.checkpointer.stop()
        if hasattr(app.state, "engine"):
            app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (default: the environment's)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        opened = not hasattr(app.state, "db")  # tests may install their own
        try:
            if opened:
                await _open_database(app, settings)
            yield
        finally:
            if opened:
                await _close_database(app)

    app = FastAPI(
        title="Arbiter",
        version="0.1.0",
        summary="Preference-data annotation and RLAIF labeling.",
        lifespan=lifespan,
    )
    app.state.key_cache = KeyCache(settings.auth_cache_seconds)
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(QuickSubmitRoute)
    for module in ROUTERS:
        app.include_router(module.router)
    web.install(app)
    return app


def create_served_app() -> FastAPI:
    """The app `arbiter serve` runs: `create_app()`, then the start-up heap frozen.

    The imports leave a large heap of long-lived objects (FastAPI, pydantic, SQLAlchemy).
    Every full collection walked them all, stalling every request in flight for 140-170 ms;
    frozen, they are out of the collector's sight (a full collection then takes ~5 ms).
    """
    app = create_app()
    gc.freeze()
    return app
