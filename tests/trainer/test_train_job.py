"""Training as a job, end to end: import -> human labels through the API -> POST /v1/jobs ->
`arbiter worker train`'s handler -> metrics and artifacts through the API."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.models import HumanLabel, JobKind
from service.worker import Worker
from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, lease, make_project, submit
from trainer.job import TrainHandler

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GOOD = "Thank you very much. Item {n} is fine."
BAD = "No. Sorry {n}."


def labeled_project(client: TestClient, keys: Keys, n: int = 40) -> int:
    """A pairwise project whose annotator always prefers the thankful response."""
    project_id = make_project(client, keys, "pairwise")
    rng = random.Random(5)
    rows = []
    for i in range(n):
        pair = [GOOD.format(n=i % 7), BAD.format(n=i)]
        rng.shuffle(pair)
        rows.append({"prompt": f"Question {i}: tell me about item {i % 7}.", "responses": pair})
    assert import_rows(client, keys, project_id, rows).status_code == 201
    while (leased := lease(client, keys.annotator, project_id)).status_code == 200:
        item = leased.json()["item"]
        choice = "a" if item["responses"][0]["text"].startswith("Thank") else "b"
        body = {"kind": "pairwise", "choice": choice}
        assert submit(client, keys.annotator, leased.json()["id"], body).status_code == 201
    return project_id


def train_config(base_model: Path, **overrides: Any) -> dict[str, Any]:
    """A quick DPO run on the tiny model."""
    return {
        "method": "dpo",
        "model": str(base_model),
        "learning_rate": 1e-3,
        "epochs": 3,
        "max_length": 128,
        "eval_fraction": 0.25,
        **overrides,
    }


def post_job(client: TestClient, keys: Keys, project_id: int, config: dict[str, Any]) -> Any:
    """POST /v1/jobs for a training job."""
    return client.post(
        "/v1/jobs",
        json={"kind": "train", "project_id": project_id, "config": config},
        headers=Keys.auth(keys.operator),
    )


def train_worker(factory: sessionmaker[Session], artifacts: Path) -> Worker:
    """The handler `arbiter worker train` runs, in this process."""
    handler = TrainHandler(Settings(artifacts_dir=artifacts))
    return Worker(factory, JobKind.train, handler, lease_seconds=30, batch_size=1, poll_seconds=0.1)


def test_a_dpo_job_trains_on_annotators_labels_and_leaves_its_artifacts(
    client: TestClient,
    keys: Keys,
    session_factory: sessionmaker[Session],
    tiny_models: TinyModels,
    tmp_path: Path,
) -> None:
    project_id = labeled_project(client, keys)
    started = post_job(client, keys, project_id, train_config(tiny_models.causal_lm))
    assert started.status_code == 201, started.text

    assert train_worker(session_factory, tmp_path).run(exit_when_idle=True) == 1

    op = Keys.auth(keys.operator)
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=op).json()
    assert job["status"] == "succeeded", job
    assert job["metrics"]["step"] == job["metrics"]["total_steps"] > 0
    assert job["metrics"]["final"]["eval_rewards/accuracies"] >= 0.9
    artifacts = client.get(f"/v1/jobs/{job['id']}/artifacts", headers=op)
    assert artifacts.status_code == 200, artifacts.text
    files = {f["path"] for f in artifacts.json()["files"]}
    assert {"model/config.json", "metrics.json", "manifest.json"} <= files
    manifest = artifacts.json()["manifest"]
    with session_factory() as session:
        label_ids = sorted(session.scalars(select(HumanLabel.id)))
    assert manifest["data"]["human_label_ids"] == label_ids
    assert manifest["config"]["method"] == "dpo" and manifest["spec"]["beta"] == 0.1
    assert manifest["data"]["train_rows"] + manifest["data"]["eval_rows"] == 40


def test_cancelling_a_training_job_stops_it_at_the_next_step(
    client: TestClient,
    keys: Keys,
    session_factory: sessionmaker[Session],
    tiny_models: TinyModels,
    tmp_path: Path,
) -> None:
    project_id = labeled_project(client, keys, n=24)
    config = train_config(tiny_models.causal_lm, epochs=100, batch_size=2)
    job_id = post_job(client, keys, project_id, config).json()["id"]
    worker = train_worker(session_factory, tmp_path)
    thread = threading.Thread(target=worker.run, kwargs={"max_batches": 1})
    thread.start()
    op = Keys.auth(keys.operator)
    deadline = time.monotonic() + 120
    while not client.get(f"/v1/jobs/{job_id}", headers=op).json()["metrics"].get("step"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=op).status_code == 200
    thread.join(timeout=120)
    assert not thread.is_alive()
    job = client.get(f"/v1/jobs/{job_id}", headers=op).json()
    assert job["status"] == "cancelled"
    assert job["metrics"]["step"] < job["metrics"]["total_steps"]
    assert client.get(f"/v1/jobs/{job_id}/artifacts", headers=op).status_code == 409


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "/no/such/model"}, "config.model"),
        ({"min_pairs": 1000}, "config.data"),
        ({"method": "kto"}, "config.method"),
        ({"beta": 0}, "train.config.beta"),
        ({"beta": -0.5}, "train.config.beta"),
        ({"data": {"source": "human", "min_confidence": 0.5}}, "config.data.source"),
    ],
)
def test_bad_training_requests_fail_before_any_training(
    client: TestClient,
    keys: Keys,
    tiny_models: TinyModels,
    overrides: dict[str, Any],
    field: str,
) -> None:
    project_id = labeled_project(client, keys, n=10)
    refused = post_job(client, keys, project_id, train_config(tiny_models.causal_lm, **overrides))
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    listed = client.get("/v1/jobs", headers=Keys.auth(keys.operator)).json()["data"]
    assert listed == []
