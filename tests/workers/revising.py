"""Helpers for constitution tests: starting jobs, running a worker in-process, reading chains."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.models import JobKind
from service.worker import Worker
from tests.conftest import Keys
from workers.constitution_job import ConstitutionHandler


def post_constitution_job(client: TestClient, keys: Keys, project_id: int, **config: Any) -> Any:
    """POST a constitution job; returns the response."""
    return client.post(
        "/v1/jobs",
        json={"kind": "constitution", "project_id": project_id, "config": config},
        headers=Keys.auth(keys.operator),
    )


def start_constitution_job(
    client: TestClient, keys: Keys, project_id: int, **config: Any
) -> dict[str, Any]:
    """Start a constitution job through the endpoint; returns the job."""
    response = post_constitution_job(client, keys, project_id, **config)
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_constitution_worker(factory: sessionmaker[Session], **kwargs: Any) -> int:
    """Run a constitution worker in this process until no work is left; returns batches."""
    worker = Worker(
        factory, JobKind.constitution, ConstitutionHandler(), lease_seconds=30, **kwargs
    )
    return worker.run(exit_when_idle=True)


def chains(client: TestClient, keys: Keys, job_id: int, **params: Any) -> list[dict[str, Any]]:
    """Every chain of the job, as GET /v1/jobs/{id}/revisions shows them."""
    response = client.get(
        f"/v1/jobs/{job_id}/revisions", params=params, headers=Keys.auth(keys.operator)
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])
