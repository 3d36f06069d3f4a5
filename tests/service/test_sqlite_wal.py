"""The served app checkpoints SQLite's WAL in the background, and the WAL still starts over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.app import create_app
from service.config import Settings
from service.db import begin_write, make_engine
from service.sqlite_wal import AUTOCHECKPOINT_BACKSTOP, WalCheckpointer

WRITES = 300


def _wal_frames(url: str) -> int:
    """Frames in the WAL now (a PASSIVE checkpoint reports them and copies what it can)."""
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        frames = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1]
    engine.dispose()
    return int(frames)


def test_with_automatic_checkpoints_off_the_checkpointer_keeps_the_wal_short(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url, wal_autocheckpoint=0)
    checkpointer = WalCheckpointer(engine, restart_frames=40, interval_seconds=0.005)
    checkpointer.start()
    try:
        with Session(engine) as session:
            session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
            session.commit()
            for n in range(WRITES):  # back to back, as under full load
                begin_write(session)
                session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "x" * n})
                session.commit()
        # Read while the engine's connection is open (the last one to close empties the WAL).
        frames = _wal_frames(sqlite_url)
    finally:
        checkpointer.stop()
        engine.dispose()

    assert frames < WRITES // 2  # each commit appended at least one frame: the WAL restarted


def test_one_served_sqlite_process_leaves_the_checkpoint_to_its_thread_with_a_backstop(
    sqlite_url: str,
) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url))) as client:
        state = client.app.state  # type: ignore[attr-defined]
        with state.engine.connect() as conn:
            autocheckpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        quick = state.quick_submit._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

    assert (autocheckpoint, quick) == (AUTOCHECKPOINT_BACKSTOP, AUTOCHECKPOINT_BACKSTOP)
    assert isinstance(state.checkpointer, WalCheckpointer)


def test_several_server_processes_keep_sqlites_own_checkpoint(sqlite_url: str) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url, workers=2))) as client:
        state = client.app.state  # type: ignore[attr-defined]
        with state.engine.connect() as conn:
            autocheckpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()

    assert autocheckpoint == 1000
    assert not hasattr(state, "checkpointer")


def test_a_checkpointer_that_cannot_connect_logs_and_keeps_trying_until_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'a.db'}")
    checkpointer = WalCheckpointer(engine, interval_seconds=0.005)

    checkpointer.start()
    time.sleep(0.1)  # many failed rounds
    checkpointer.stop()
    engine.dispose()

    failures = [r for r in caplog.records if r.name == "service.sqlite_wal"]
    assert len(failures) == 1  # logged once a minute, not every round
    assert not checkpointer._thread.is_alive()
