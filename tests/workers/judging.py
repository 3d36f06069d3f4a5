"""Helpers for judge tests: projects with items, starting jobs, running a worker in-process."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.models import JobKind
from service.worker import Worker
from tests.conftest import Keys
from tests.service.helpers import import_rows, make_project
from workers.judge_job import JudgeHandler

PAIRS = [
    {"prompt": f"What is {n} plus {n}?", "responses": [f"It is {2 * n}.", "I don't know."]}
    for n in range(6)
]
LISTS = [
    {"prompt": f"Name a colour, take {n}.", "responses": ["Blue.", "Red, of course.", "No."]}
    for n in range(3)
]
SINGLES = [{"prompt": f"Say hi {n}.", "responses": [f"Hello number {n}!"]} for n in range(4)]
ROWS = {"pairwise": PAIRS, "listwise": LISTS, "binary": SINGLES}


def project_with_items(client: TestClient, keys: Keys, kind: str) -> int:
    """A project of `kind` with a few imported items."""
    project_id = make_project(client, keys, kind)
    response = import_rows(client, keys, project_id, ROWS[kind])
    assert response.status_code == 201, response.text
    return project_id


def start_job(client: TestClient, keys: Keys, project_id: int, **config: Any) -> dict[str, Any]:
    """Start a judge job through the endpoint; returns the job."""
    response = client.post(
        "/v1/jobs",
        json={"kind": "judge", "project_id": project_id, "config": config},
        headers=Keys.auth(keys.operator),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def get_job(client: TestClient, keys: Keys, job_id: int) -> dict[str, Any]:
    """The job as GET shows it."""
    response = client.get(f"/v1/jobs/{job_id}", headers=Keys.auth(keys.operator))
    assert response.status_code == 200, response.text
    return dict(response.json())


def run_judge_worker(factory: sessionmaker[Session], **kwargs: Any) -> int:
    """Run a judge worker in this process until no work is left; returns batches handled."""
    worker = Worker(factory, JobKind.judge, JudgeHandler(), lease_seconds=30, **kwargs)
    return worker.run(exit_when_idle=True)
