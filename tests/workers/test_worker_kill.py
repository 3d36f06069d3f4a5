"""Workers killed with SIGKILL at random moments lose and duplicate nothing (PostgreSQL).

Real `arbiter worker judge` (or `constitution`) processes share a job; every couple of
seconds one is killed mid-batch and a new one started. Expired leases return the dead
workers' batches to the pool; at the end every pair has exactly one judgment per order, and
every response exactly one chain and at most one constitutional pair.
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

from service.models import AIJudgment, AILabel, Item, RevisionChain, WorkUnit
from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, make_project
from tests.workers.judging import get_job, start_job
from tests.workers.revising import start_constitution_job

N_PAIRS = 500
N_CHAINS = 48
N_WORKERS = 3


def _spawn(db_url: str, n: int, kind: str = "judge") -> subprocess.Popen[bytes]:
    env = {**os.environ, "ARBITER_DATABASE_URL": db_url, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "worker",
            kind,
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


def _kill_workers_until_done(
    client: TestClient, keys: Keys, db_url: str, job_id: int, kind: str
) -> int:
    """Keep N_WORKERS workers of `kind` on the job, killing one every 2-6 s, until the job
    ends; returns how many were killed."""
    rng = random.Random(7)
    workers = [_spawn(db_url, n, kind) for n in range(N_WORKERS)]
    spawned, kills = N_WORKERS, 0
    deadline = time.monotonic() + 400
    try:
        while get_job(client, keys, job_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, get_job(client, keys, job_id)
            time.sleep(rng.uniform(2.0, 6.0))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            workers.append(_spawn(db_url, spawned, kind))
            spawned += 1
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    return kills


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
    kills = _kill_workers_until_done(client, keys, db_url, job["id"], "judge")

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


@pytest.mark.slow
@pytest.mark.integration
def test_killed_constitution_workers_leave_exactly_one_chain_per_response(
    client: TestClient,
    keys: Keys,
    db_url: str,
    session_factory: sessionmaker[Session],
    tiny_models: TinyModels,
) -> None:
    project_id = make_project(client, keys, "pairwise")
    rows = [
        {"prompt": f"Question {n}: what is {n} times 3?", "responses": [f"{3 * n}", f"{n} or so"]}
        for n in range(N_CHAINS // 2)
    ]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    job = start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.reply_lm),
        rounds=2,
        max_tokens=16,
        batch_size=4,
        max_attempts=50,
    )
    kills = _kill_workers_until_done(client, keys, db_url, job["id"], "constitution")

    final = get_job(client, keys, job["id"])
    assert final["status"] == "succeeded", final
    assert kills >= 3
    assert final["progress"]["attempts"] > N_CHAINS  # some batches really were taken over
    assert final["metrics"]["responses"] == N_CHAINS  # counted once per response, too
    with session_factory() as session:
        per_response = session.execute(
            select(RevisionChain.response_id, func.count())
            .where(RevisionChain.job_id == job["id"])
            .group_by(RevisionChain.response_id)
        ).all()
        pairs = session.scalar(select(func.count()).where(AILabel.job_id == job["id"]))
        pair_items = session.scalar(
            select(func.count()).where(Item.external_id.like(f"constitution:{job['id']}:%"))
        )
    assert len(per_response) == N_CHAINS
    assert {n for _, n in per_response} == {1}
    assert pairs == pair_items == N_CHAINS
