"""The worker loop: claim a batch, run it, store the results with the ack, heartbeat meanwhile.

Shared by every worker kind (the judge workers, the trainer's job adapter); it knows the
queue, not what a batch does: a handler does that.

Model calls happen outside any database transaction. A heartbeat thread keeps the batch's
lease alive while the model runs; SIGTERM lets the current batch finish, then the worker
exits. A batch that raises is given back (retried with backoff, dead after max_attempts);
a job whose configuration cannot run (unknown template or model) fails at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.models import JobKind

log = logging.getLogger(__name__)


class JobConfigError(Exception):
    """The job's configuration cannot run on any attempt: fail the job, do not retry."""


BatchHandler = Callable[[sessionmaker[Session], str, queue.Claim], None]


def default_worker_id(kind: JobKind) -> str:
    """host:pid:kind, unique among live workers."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind.value}"


@dataclass
class Worker:
    """Claims work of one kind and hands each batch to `handle`."""

    factory: sessionmaker[Session]
    kind: JobKind
    handle: BatchHandler
    worker_id: str = ""
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    batch_size: int | None = None  # None: each job's own batch_size
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.worker_id = self.worker_id or default_worker_id(self.kind)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT: finish the batch in hand, then stop."""

        def drain(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing the current batch", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, drain)
        signal.signal(signal.SIGINT, drain)

    def run(self, *, exit_when_idle: bool = False, max_batches: int | None = None) -> int:
        """Work until stopped (or idle, or after `max_batches`); returns batches handled."""
        done = 0
        while not self.stop.is_set() and (max_batches is None or done < max_batches):
            with self.factory() as session:
                claim = queue.claim(
                    session,
                    self.kind,
                    self.worker_id,
                    limit=self.batch_size,
                    lease_seconds=self.lease_seconds,
                )
            if claim is None:
                if exit_when_idle and not self._work_left():
                    break
                self.stop.wait(self.poll_seconds)
                continue
            self.run_batch(claim)
            done += 1
        return done

    def _work_left(self) -> bool:
        """Rows of this kind still queued (perhaps backing off) or held by other workers."""
        with self.factory() as session:
            return queue.has_open_work(session, self.kind)

    def run_batch(self, claim: queue.Claim) -> None:
        """Run one claimed batch under a heartbeat; give it back if it raises."""
        beat = _Heartbeat(self, [u.id for u in claim.units])
        beat.start()
        try:
            self.handle(self.factory, self.worker_id, claim)
        except JobConfigError as exc:
            log.warning("job %s cannot run: %s", claim.job_id, exc, extra=self._extra(claim))
            with self.factory() as session:
                queue.fail_job(session, claim.job_id, str(exc))
        except Exception as exc:
            log.exception("batch of job %s failed", claim.job_id, extra=self._extra(claim))
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            with self.factory() as session:
                queue.fail(session, self.worker_id, [u.id for u in claim.units], error)
        finally:
            beat.stop()

    def _extra(self, claim: queue.Claim) -> dict[str, Any]:
        return {"job_id": claim.job_id, "worker_id": self.worker_id}


class _Heartbeat(threading.Thread):
    """Extends the batch's lease every third of the lease while the batch runs."""

    def __init__(self, worker: Worker, unit_ids: list[int]) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{worker.worker_id}")
        self.worker, self.unit_ids = worker, unit_ids
        self.done = threading.Event()

    def run(self) -> None:
        """Beat until stopped or until the rows are no longer this worker's."""
        interval = max(self.worker.lease_seconds / 3, 0.05)
        while not self.done.wait(interval):
            try:
                with self.worker.factory() as session:
                    held = queue.heartbeat(
                        session,
                        self.worker.worker_id,
                        self.unit_ids,
                        lease_seconds=self.worker.lease_seconds,
                    )
            except Exception:
                log.exception("heartbeat failed", extra={"worker_id": self.worker.worker_id})
                continue
            if not held:
                return

    def stop(self) -> None:
        """Stop beating and wait for the thread."""
        self.done.set()
        self.join(timeout=5)


def run_worker_process(
    kind: JobKind,
    handler: BatchHandler,
    settings: Settings,
    *,
    worker_id: str,
    lease_seconds: float,
    poll_seconds: float,
    batch_size: int | None,
    exit_when_idle: bool,
) -> tuple[str, int]:
    """A worker process's life (the `arbiter worker ...` commands): connect, handle signals,
    work; returns the worker's id and the batches it handled."""
    factory = make_session_factory(
        make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    )
    worker = Worker(
        factory,
        kind,
        handler,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=batch_size,
    )
    worker.install_signal_handlers()
    return worker.worker_id, worker.run(exit_when_idle=exit_when_idle)
