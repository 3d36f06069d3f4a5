"""SQLite WAL checkpoints from a background thread, off the writers' path.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: that
commit copies the pages back into the database file and syncs it, 10-200 ms on the server's
event loop, a stall for every request in flight (most of the submit p99). The served app
moves the automatic checkpoint far out on its connections and runs this thread instead:
- PASSIVE checkpoints copy and sync the pages while writers go on;
- once the WAL holds `restart_frames`, a last PASSIVE checkpoint runs under this process's
  writer lock, so it catches up completely and the next writer starts the WAL file over (a
  WAL that never catches up grows without bound under steady writes).

Writers of this process wait only for that last step (about 10 ms, every few seconds under
full load). Other processes' writers are not held back; with several server processes
(ARBITER_WORKERS > 1) the app keeps SQLite's automatic checkpoint instead. The served
connections keep an automatic checkpoint far past `RESTART_FRAMES` as a backstop, should this
thread fall behind or die.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import cast

from sqlalchemy import Engine

from service.db import make_engine, sqlite_write_lock

logger = logging.getLogger(__name__)

RESTART_FRAMES = 4096
"""WAL length (pages) at which the checkpointer restarts the WAL."""
AUTOCHECKPOINT_BACKSTOP = 4 * RESTART_FRAMES
"""`wal_autocheckpoint` of the served connections: SQLite's own, only if this thread lags."""

_CATCH_UP_FRAMES = 64  # at most this much left to copy while the writers are held back
_CATCH_UP_TRIES = 8
_LOCK_WAIT_SECONDS = 0.5
_LOG_EVERY_SECONDS = 60.0


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database's WAL; `start()`, then `stop()`."""

    def __init__(
        self,
        engine: Engine,
        *,
        restart_frames: int = RESTART_FRAMES,
        interval_seconds: float = 0.05,
    ) -> None:
        url = engine.url.render_as_string(hide_password=False)
        # busy_timeout 0: never wait inside SQLite, above all while holding the writer lock.
        self._engine = make_engine(url, pool_size=1, busy_timeout_ms=0)
        self._writer_lock = sqlite_write_lock(engine)
        self._restart_frames = restart_frames
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="sqlite-wal-checkpointer", daemon=True
        )
        self._last_logged = -_LOG_EVERY_SECONDS

    def start(self) -> None:
        """Start checkpointing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and close the thread's connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._engine.dispose()

    def _run(self) -> None:
        pooled = None
        while not self._stop.wait(self._interval):
            try:
                if pooled is None:
                    pooled = self._engine.raw_connection()
                self._checkpoint(cast(sqlite3.Connection, pooled.driver_connection))
            except Exception:  # keep going: the served connections' backstop still holds
                self._log_failure()
        if pooled is not None:
            pooled.close()

    def _log_failure(self) -> None:
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY_SECONDS:
            self._last_logged = now
            logger.exception("WAL checkpoint failed; trying again (logged once a minute)")

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy what the WAL holds; restart it once it is long."""
        frames, copied = _passive(conn)
        if frames < self._restart_frames:
            return
        for _ in range(_CATCH_UP_TRIES):  # most of the copying, with the writers going on
            if frames - copied <= _CATCH_UP_FRAMES:
                break
            frames, copied = _passive(conn)
        else:
            return  # writers outpace the copying: the next round tries again
        if not self._writer_lock.acquire(timeout=_LOCK_WAIT_SECONDS):
            return
        try:
            _passive(conn)
        finally:
            self._writer_lock.release()


def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
    """A PASSIVE checkpoint: (frames in the WAL, frames copied to the database file)."""
    _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames), int(copied)
