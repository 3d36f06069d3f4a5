"""Judge workers killed with SIGKILL at random moments lose and duplicate nothing (PostgreSQL).

Real `arbiter worker judge` processes share a job of 500 pairs; every couple of seconds one
is killed mid-batch and a new one started. Expired leases return the dead workers' batches
to the pool; at the end every pair has exactly one judgment per order.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.models import AIJudgment, AILabel, WorkUnit
from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, make_project
from tests.workers.judging import get_job, start_job

N_PAIRS = 500
N_WORKERS = 3


def _spawn(db_url: str, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ARBITER_DATABASE_URL": db_url, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "worker",
            "judge",
            "--worker-id",
            f"victim-{n}",
            "--lease-seconds",
            "2",
            "--poll-seconds",
            "0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only: the claim under test is FOR UPDATE SKIP LOCKED."""
    return pg_url


@pytest.mark.slow
@pytest.mark.integration
def test_killed_workers_leave_exactly_one_judgment_per_pair_and_order(
    client: TestClient,
    keys: Keys,
    db_url: str,
    session_factory: sessionmaker[Session],
    tiny_models: TinyModels,
) -> None:
    project_id = make_project(client, keys, "pairwise")
    rows = [
        {"prompt": f"Question {n}: what is {n} times 3?", "responses": [f"{3 * n}", f"{n} or so"]}
        for n in range(N_PAIRS)
    ]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    job = start_job(
        client, keys, project_id, model=str(tiny_models.causal_lm), batch_size=8, max_attempts=50
    )
    rng = random.Random(7)
    spawned = 0
    workers = []
    for _ in range(N_WORKERS):
        workers.append(_spawn(db_url, spawned))
        spawned += 1
    kills = 0
    deadline = time.monotonic() + 400
    try:
        while get_job(client, keys, job["id"])["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, get_job(client, keys, job["id"])
            time.sleep(rng.uniform(1.0, 4.0))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            workers.append(_spawn(db_url, spawned))
            spawned += 1
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    final = get_job(client, keys, job["id"])
    assert final["status"] == "succeeded", final
    assert kills >= 3
    assert final["progress"]["attempts"] > N_PAIRS  # some batches really were taken over
    with session_factory() as session:
        per_order = session.execute(
            select(
                AIJudgment.item_id,
                AIJudgment.first_position,
                AIJudgment.second_position,
                func.count(),
            )
            .where(AIJudgment.job_id == job["id"])
            .group_by(AIJudgment.item_id, AIJudgment.first_position, AIJudgment.second_position)
        ).all()
        labels = session.scalar(select(func.count()).where(AILabel.job_id == job["id"]))
        open_units = session.scalar(
            select(func.count()).where(WorkUnit.job_id == job["id"], WorkUnit.status != "done")
        )
    assert len(per_order) == 2 * N_PAIRS
    assert {n for *_, n in per_order} == {1}
    assert {(a, b) for _, a, b, _ in per_order} == {(0, 1), (1, 0)}
    assert labels == N_PAIRS
    assert open_units == 0
