"""SQLite WAL checkpoints from a background thread, off the writers' path.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: that
commit copies the pages back into the database file and syncs it, 10-200 ms on the server's
event loop, a stall for every request in flight (most of the submit p99). The served app
turns the automatic checkpoint off on its connections and runs this thread instead:
- PASSIVE checkpoints copy and sync the pages while writers go on;
- once the WAL holds `restart_frames`, a last PASSIVE checkpoint runs under this process's
  writer lock, so it catches up completely and the next writer starts the WAL file over (a
  WAL that never catches up grows without bound under steady writes).

Writers of this process wait only for that last step (about 10 ms, every few seconds under
full load). Other processes' writers are not held back; with several server processes
(ARBITER_WORKERS > 1) the app keeps SQLite's automatic checkpoint instead.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import cast

from sqlalchemy import Engine

from service.db import make_engine, sqlite_write_lock

logger = logging.getLogger(__name__)

_CATCH_UP_FRAMES = 64  # left to copy when the writers are held back
_CATCH_UP_TRIES = 8


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database's WAL; `start()`, then `stop()`."""

    def __init__(
        self, engine: Engine, *, restart_frames: int = 4096, interval_seconds: float = 0.05
    ) -> None:
        url = engine.url.render_as_string(hide_password=False)
        self._engine = make_engine(url, pool_size=1)
        self._writer_lock = sqlite_write_lock(engine)
        self._restart_frames = restart_frames
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="sqlite-wal-checkpointer", daemon=True
        )

    def start(self) -> None:
        """Start checkpointing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and close the thread's connection."""
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _run(self) -> None:
        pooled = self._engine.raw_connection()
        conn = cast(sqlite3.Connection, pooled.driver_connection)
        try:
            while not self._stop.wait(self._interval):
                try:
                    self._checkpoint(conn)
                except sqlite3.Error:
                    logger.exception("WAL checkpoint failed; trying again")
        finally:
            pooled.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy what the WAL holds; restart it once it is long."""
        frames, copied = _passive(conn)
        if frames < self._restart_frames:
            return
        for _ in range(_CATCH_UP_TRIES):  # most of the copying, with the writers going on
            if frames - copied <= _CATCH_UP_FRAMES:
                break
            frames, copied = _passive(conn)
        with self._writer_lock:
            _passive(conn)


def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
    """A PASSIVE checkpoint: (frames in the WAL, frames copied to the database file)."""
    _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames), int(copied)
