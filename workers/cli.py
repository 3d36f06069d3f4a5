"""`arbiter worker judge`: the judge worker process."""

from __future__ import annotations

from typing import Annotated

import typer

from service.config import get_settings
from service.models import JobKind
from service.worker import run_worker_process
from workers.backends import BackendCache
from workers.judge_job import JudgeHandler


def judge(
    worker_id: Annotated[str, typer.Option(help="Name in leases and logs [host:pid:judge]")] = "",
    lease_seconds: Annotated[float, typer.Option(min=1, help="Lease per batch")] = 60.0,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="Wait when idle")] = 1.0,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Items per claim [each job's batch_size]")
    ] = None,
    exit_when_idle: Annotated[bool, typer.Option(help="Stop when no work is left")] = False,
) -> None:
    """Claim judge work from the database and label items with an LLM judge."""
    settings = get_settings()
    name, batches = run_worker_process(
        JobKind.judge,
        JudgeHandler(BackendCache(settings)),
        settings,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        batch_size=batch_size,
        exit_when_idle=exit_when_idle,
    )
    typer.echo(f"worker {name} stopped after {batches} batches")
