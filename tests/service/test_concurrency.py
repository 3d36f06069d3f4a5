"""Fifty annotators at once on a real server: overlap holds, nothing is lost or duplicated."""

from __future__ import annotations

import random
import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from service.db import make_engine, make_session_factory
from service.domain.auth import create_key
from service.domain.imports import ImportOptions, run_import
from service.domain.projects import create_project
from service.models import Assignment, AssignmentStatus, FeedbackKind, HumanLabel, Item, Role
from tests.service.helpers import jsonl
from tests.service.live_server import live_server

ANNOTATORS = 50
ITEMS = 60
OVERLAP = 3


def _seed(db_url: str) -> tuple[int, list[str]]:
    import io

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory() as s:
        _, operator, _ = create_key(s, "operator", Role.operator)
    with factory() as s:
        project = create_project(
            s,
            name="crowd",
            kind=FeedbackKind.pairwise,
            overlap=OVERLAP,
            lease_seconds=600,
            instructions="",
            created_by_id=operator.id,
        )
    rows = [{"prompt": f"q{n}", "responses": [f"a{n}", f"b{n}"]} for n in range(ITEMS)]
    with factory() as s:
        run_import(s, project.id, io.BytesIO(jsonl(rows)), ImportOptions(), operator.id)
    keys = []
    for n in range(ANNOTATORS):
        with factory() as s:
            keys.append(create_key(s, f"annotator{n}", Role.annotator)[2])
    engine.dispose()
    return project.id, keys


def _annotate(base: str, project_id: int, key: str, acked: list[dict], errors: list[str]) -> None:
    rng = random.Random(key)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        while True:
            leased = client.post(f"/v1/projects/{project_id}/assignments")
            if leased.status_code == 204:
                return
            if leased.status_code != 200:
                errors.append(f"lease {leased.status_code} {leased.text}")
                return
            assignment = leased.json()
            body = {"kind": "pairwise", "choice": rng.choice(["a", "b", "tie"])}
            idem = {"Idempotency-Key": f"{key}-{assignment['id']}"}
            # Some annotators retry their submit, as a client would after a timeout.
            for _ in range(2 if rng.random() < 0.3 else 1):
                done = client.post(
                    f"/v1/assignments/{assignment['id']}/labels", json=body, headers=idem
                )
                if done.status_code not in (200, 201):
                    errors.append(f"submit {done.status_code} {done.text}")
                    return
                acked.append(done.json())


@pytest.mark.integration
@pytest.mark.slow
def test_fifty_concurrent_annotators_keep_overlap_and_lose_nothing(any_db_url: str) -> None:
    project_id, keys = _seed(any_db_url)
    acked: list[dict] = []
    errors: list[str] = []
    with live_server(any_db_url, workers=2) as base:
        threads = [
            threading.Thread(target=_annotate, args=(base, project_id, key, acked, errors))
            for key in keys
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert errors == []
    engine = make_engine(any_db_url)
    with make_session_factory(engine)() as s:
        per_item = Counter(s.scalars(select(HumanLabel.item_id)))
        per_annotator_item = Counter(
            s.execute(select(HumanLabel.item_id, HumanLabel.annotator_id)).all()
        )
        stored_ids = set(s.scalars(select(HumanLabel.id)))
        label_counts = dict(s.execute(select(Item.id, Item.label_count)).all())
        submitted = s.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.status == AssignmentStatus.submitted)
        )
    engine.dispose()
    acked_ids = {label["id"] for label in acked}
    assert acked_ids <= stored_ids  # every acknowledged submit is in the database
    assert len(stored_ids) == len(acked_ids) == ITEMS * OVERLAP  # every slot filled once
    assert max(per_item.values()) == OVERLAP  # no item over its overlap
    assert set(per_annotator_item.values()) == {1}  # nobody labeled an item twice
    assert label_counts == dict(per_item)  # counters agree with the rows
    assert submitted == ITEMS * OVERLAP
