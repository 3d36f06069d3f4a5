"""`arbiter worker judge` and `arbiter worker constitution`: the LLM worker processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from service.config import get_settings
from service.models import JobKind
from service.worker import BatchHandler, run_worker_process

if TYPE_CHECKING:
    from workers.backends import BackendCache

# The commands import the model libraries when they run, not when `arbiter` starts: every
# `arbiter` command (`serve` too) loads this module to list its commands.

WorkerIdOption = Annotated[str, typer.Option(help="Name in leases and logs [host:pid:KIND]")]
LeaseOption = Annotated[float, typer.Option(min=1, help="Lease per batch")]
PollOption = Annotated[float, typer.Option(min=0.01, help="Wait when idle")]
BatchOption = Annotated[
    int | None, typer.Option(min=1, help="Items (judge) or responses per claim [the job's]")
]
IdleOption = Annotated[bool, typer.Option(help="Stop when no work is left")]


def _work(
    kind: JobKind,
    handler: Callable[[BackendCache], BatchHandler],
    *,
    worker_id: str,
    lease_seconds: float,
    poll_seconds: float,
    batch_size: int | None,
    exit_when_idle: bool,
) -> None:
    """Run a worker of `kind` whose handler loads its models through a backend cache."""
    from workers.backends import BackendCache

    settings = get_settings()
    name, batches = run_worker_process(
        kind,
        handler(BackendCache(settings)),
        settings,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=batch_size,
        exit_when_idle=exit_when_idle,
    )
    typer.echo(f"worker {name} stopped after {batches} batches")


def judge(
    worker_id: WorkerIdOption = "",
    lease_seconds: LeaseOption = 60.0,
    poll_seconds: PollOption = 1.0,
    batch_size: BatchOption = None,
    exit_when_idle: IdleOption = False,
) -> None:
    """Claim judge work from the database and label items with an LLM judge."""
    from workers.judge_job import JudgeHandler

    _work(
        JobKind.judge,
        JudgeHandler,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=batch_size,
        exit_when_idle=exit_when_idle,
    )


def constitution(
    worker_id: WorkerIdOption = "",
    lease_seconds: LeaseOption = 60.0,
    poll_seconds: PollOption = 1.0,
    batch_size: BatchOption = None,
    exit_when_idle: IdleOption = False,
) -> None:
    """Claim constitution work: critique and revise responses, store chains and pairs."""
    from workers.constitution_job import ConstitutionHandler

    _work(
        JobKind.constitution,
        ConstitutionHandler,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=batch_size,
        exit_when_idle=exit_when_idle,
    )
