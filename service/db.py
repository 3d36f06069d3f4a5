"""Database plumbing: declarative Base, engines (SQLite WAL / PostgreSQL), sessions."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, Engine, MetaData, Select, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])  # a SELECT of any columns


class Base(DeclarativeBase):
    """Declarative base of every Arbiter table, with stable constraint names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if not isinstance(value, dt.datetime):
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return url.startswith("sqlite")


def _install_sqlite_hooks(
    engine: Engine, busy_timeout_ms: int, wal_autocheckpoint: int | None
) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and cannot start BEGIN IMMEDIATE;
    # take over BEGIN ourselves, as SQLAlchemy's docs recommend ("Serializable isolation /
    # Savepoints / Transactional DDL" in the pysqlite dialect notes).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if wal_autocheckpoint is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
        conn.info["sqlite_writer"] = mode == "IMMEDIATE"


def dialect_insert(session: Session) -> Any:
    """The dialect's INSERT construct (both SQLite's and PostgreSQL's know ON CONFLICT)."""
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    busy_timeout_ms: int = 30_000,
    wal_autocheckpoint: int | None = None,
) -> Engine:
    """Create the engine for a database URL with Arbiter's per-backend settings.

    SQLite: `wal_autocheckpoint` pages (None: SQLite's default, 1,000; a process that
    checkpoints in the background, `service.sqlite_wal`, sets it far higher).
    """
    if is_sqlite(url):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=pool_size, max_overflow=0
        )
        _install_sqlite_hooks(engine, busy_timeout_ms, wal_autocheckpoint)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


# One SQLite writer at a time per process and database file: threads queue on this lock
# instead of in SQLite's busy handler, which sleeps up to 100 ms between retries (the tail
# latency of concurrent writers). Other processes still meet at SQLite's own lock.
_sqlite_write_locks: dict[str, threading.Lock] = {}
_WRITE_LOCK_KEY = "arbiter_sqlite_write_lock"


def sqlite_write_lock(engine: Engine) -> threading.Lock:
    """This process's writer lock of a SQLite database (held for a whole write transaction)."""
    return _sqlite_write_locks.setdefault(str(engine.url), threading.Lock())


def begin_write(session: Session) -> None:
    """Open the session's transaction as a writer.

    On SQLite this is BEGIN IMMEDIATE, so the transaction holds the single write lock from its
    first statement and never fails later trying to upgrade a read lock. Elsewhere a no-op.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if session.in_transaction():
        if session.connection().info.get("sqlite_writer"):
            return
        # A read transaction cannot be upgraded safely (SQLITE_BUSY_SNAPSHOT under WAL):
        # end it (it holds only reads) and start over as a writer.
        session.commit()
    lock = sqlite_write_lock(bind.engine)
    lock.acquire()
    session.info[_WRITE_LOCK_KEY] = lock
    try:
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    except BaseException:
        session.info.pop(_WRITE_LOCK_KEY).release()
        raise


def plan_each_statement(session: Session) -> None:
    """PostgreSQL: plan each statement of this transaction for its own parameters.

    psycopg prepares a statement on its fifth run, and PostgreSQL may then keep a generic plan
    made while the tables were small. For an import's `IN` list of a batch of hashes that plan
    was a sequential scan testing every row against the whole list, so imports went quadratic
    in the project's size. `SET LOCAL` ends with the transaction. Elsewhere a no-op.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


@event.listens_for(Session, "after_transaction_end")
def _release_write_lock(session: Session, transaction: Any) -> None:
    if transaction.parent is None and _WRITE_LOCK_KEY in session.info:
        session.info.pop(_WRITE_LOCK_KEY).release()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that is always closed; the caller commits."""
    session = factory()
    try:
        yield session
    finally:
        session.close()
