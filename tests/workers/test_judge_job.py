"""AI labeling jobs end to end on the tiny model: endpoint -> worker -> stored verdicts.

Run on SQLite and PostgreSQL (the `db_url` fixture): both orders judged and stored raw,
debiased labels, Bradley-Terry rankings, P(Yes), progress, cancel, retries, config errors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.models import AIJudgment, AILabel, JobKind
from service.worker import Worker
from tests.conftest import Keys, TinyModels
from tests.service.helpers import lease, submit
from tests.workers.judging import (
    LISTS,
    PAIRS,
    SINGLES,
    get_job,
    project_with_items,
    run_judge_worker,
    start_job,
)
from workers.judge_job import JudgeHandler

HUMAN_B = {"kind": "pairwise", "choice": "b"}


def label_b(client: TestClient, keys: Keys, project_id: int, n: int) -> None:
    """An annotator labels the next n items: response B is better."""
    for _ in range(n):
        assignment = lease(client, keys.annotator, project_id).json()
        assert submit(client, keys.annotator, assignment["id"], HUMAN_B).status_code == 201


def test_a_pairwise_job_stores_both_orders_and_a_debiased_label_per_item(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm), batch_size=4)
    assert job["status"] == "queued" and job["progress"]["total"] == len(PAIRS)

    assert run_judge_worker(session_factory) == 2

    done = get_job(client, keys, job["id"])
    assert done["status"] == "succeeded"
    assert done["progress"]["done"] == len(PAIRS)
    with session_factory() as session:
        orders = session.execute(select(AIJudgment).where(AIJudgment.job_id == job["id"])).all()
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job["id"])).all()
    assert sorted((j.first_position, j.second_position) for (j,) in orders) == sorted(
        [(0, 1), (1, 0)] * len(PAIRS)
    )
    assert len(labels) == len(PAIRS)
    for label in labels:
        fwd, swp = label.scores["p_first_ab"], label.scores["p_first_ba"]
        assert label.scores["p_a_over_b"] == pytest.approx((fwd + 1 - swp) / 2)
        assert label.position_consistent == ((fwd > 0.5) == (swp < 0.5))
        assert label.judge_backend == "transformers"
        assert label.template == "helpfulness@1"


def test_one_order_judges_each_pair_once_without_a_consistency_flag(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm), orders="one")
    run_judge_worker(session_factory)
    with session_factory() as session:
        n = session.scalar(select(func.count()).where(AIJudgment.job_id == job["id"]))
        flags = session.scalars(
            select(AILabel.position_consistent).where(AILabel.job_id == job["id"])
        ).all()
    assert n == len(PAIRS)
    assert set(flags) == {None}


def test_a_listwise_job_judges_every_pair_both_ways_and_ranks_by_bradley_terry(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "listwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm), tie_band=0.0)
    run_judge_worker(session_factory)
    with session_factory() as session:
        n = session.scalar(select(func.count()).where(AIJudgment.job_id == job["id"]))
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job["id"])).all()
    assert n == len(LISTS) * 3 * 2  # C(3,2) pairs, two orders each
    for label in labels:
        scores = label.scores["bt_scores"]
        flat = [rid for group in label.value["ranking"] for rid in group]
        assert len(flat) == 3
        assert [len(g) for g in label.value["ranking"]] == [1, 1, 1]
        ids = sorted(flat)  # response ids in position order
        assert flat == [ids[p] for p in sorted(range(3), key=lambda p: -scores[p])]


def test_a_binary_job_reads_p_yes_and_rates_up_or_down(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "binary")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm))
    run_judge_worker(session_factory)
    with session_factory() as session:
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job["id"])).all()
    assert len(labels) == len(SINGLES)
    for label in labels:
        p_yes = label.scores["p_yes"]
        assert label.value == {"rating": "up" if p_yes >= 0.5 else "down"}


def test_chain_of_thought_stores_the_rationale_of_each_order(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.causal_lm),
        chain_of_thought=True,
        cot_max_tokens=6,
        items={"limit": 2},
    )
    run_judge_worker(session_factory)
    with session_factory() as session:
        rationales = session.scalars(
            select(AIJudgment.rationale).where(AIJudgment.job_id == job["id"])
        ).all()
    assert len(rationales) == 4
    assert all(isinstance(r, str) for r in rationales)


def test_ai_labels_export_as_dpo_rows_with_source_and_confidence_filters(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm), tie_band=0.0)
    run_judge_worker(session_factory)
    with session_factory() as session:
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job["id"])).all()
    op = Keys.auth(keys.operator)

    def rows(**params: object) -> list[dict[str, object]]:
        response = client.get(f"/v1/projects/{project_id}/export", params=params, headers=op)
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in io.StringIO(response.text) if line.strip()]

    ai = rows(source="ai")
    assert len(ai) == len(PAIRS)
    assert {r["source"] for r in ai} == {"ai"}
    consistent = rows(source="ai", position_consistent_only="true")
    assert len(consistent) == sum(bool(lb.position_consistent) for lb in labels)
    threshold = sorted(lb.confidence for lb in labels)[len(labels) // 2]
    confident = rows(source="ai", min_confidence=threshold)
    assert len(confident) == sum(lb.confidence >= threshold for lb in labels)
    # An annotator labels two items: with source=both their human rows stand, AI fills in.
    label_b(client, keys, project_id, 2)
    both = rows(source="both")
    assert sorted(r["source"] for r in both) == ["ai"] * (len(PAIRS) - 2) + ["human"] * 2
    refused = client.get(
        f"/v1/projects/{project_id}/export", params={"min_confidence": 0.5}, headers=op
    )
    assert refused.status_code == 422 and refused.json()["field"] == "source"


def test_the_judge_report_gives_bias_consistency_ties_and_human_agreement(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm))
    run_judge_worker(session_factory)
    label_b(client, keys, project_id, 3)
    response = client.get(
        f"/v1/projects/{project_id}/reports/judges", headers=Keys.auth(keys.operator)
    )
    assert response.status_code == 200, response.text
    [report] = response.json()["judges"]
    assert report["job_id"] == job["id"]
    assert report["n_items"] == len(PAIRS) and report["n_judgments"] == 2 * len(PAIRS)
    assert 0 <= report["first_position_win_rate"] <= 1
    assert 0 <= report["position_consistency_rate"] <= 1
    assert 0 <= report["tie_rate"] <= 1
    # Ties count as a verdict of their own; the three human-labeled pairs are compared.
    assert report["human_agreement"]["n_units"] == 3
    assert 0 <= report["human_agreement"]["accuracy"] <= 1


def test_cancelling_a_job_drops_its_queued_work_and_later_results(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm), batch_size=2)
    with session_factory() as session:
        claim = queue.claim(session, JobKind.judge, "w-early", limit=None, lease_seconds=30)
    assert claim is not None and len(claim.units) == 2
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=Keys.auth(keys.operator))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["progress"]["cancelled"] == len(PAIRS)

    Worker(session_factory, JobKind.judge, JudgeHandler(), worker_id="w-early").run_batch(claim)
    assert run_judge_worker(session_factory) == 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(AILabel.job_id == job["id"])) == 0
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=Keys.auth(keys.operator))
    assert again.status_code == 409


def test_a_failing_batch_is_retried_then_its_error_shows_on_the_job(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.causal_lm),
        max_attempts=2,
        items={"limit": 1},
    )
    calls = []

    def broken(*args: object) -> None:
        calls.append(args)
        raise RuntimeError("the GPU caught fire")

    worker = Worker(session_factory, JobKind.judge, broken, lease_seconds=30)
    worker.run(max_batches=1)
    assert get_job(client, keys, job["id"])["progress"]["queued"] == 1
    with session_factory() as session:  # skip the backoff wait
        from sqlalchemy import update

        from service.db import utcnow
        from service.models import WorkUnit

        session.execute(update(WorkUnit).values(run_after=utcnow()))
        session.commit()
    worker.run(exit_when_idle=True)
    failed = get_job(client, keys, job["id"])
    assert len(calls) == 2
    assert failed["status"] == "failed"
    assert failed["progress"]["dead"] == 1 and failed["progress"]["attempts"] == 2
    assert "the GPU caught fire" in failed["error"]


def test_a_project_template_of_its_own_is_used_and_versioned(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    template = {
        "name": "terse",
        "rubric": "Shorter is better.",
        "system": "Judge. {rubric}",
        "pairwise": "Q: {prompt}\nA: {first}\nB: {second}\nBetter?",
        "binary": "Q: {prompt}\nR: {response}\nOK?",
    }
    job = start_job(
        client, keys, project_id, model=str(tiny_models.causal_lm), custom_template=template
    )
    run_judge_worker(session_factory)
    with session_factory() as session:
        used = set(session.scalars(select(AILabel.template).where(AILabel.job_id == job["id"])))
    assert len(used) == 1 and next(iter(used)).startswith("terse@custom.")


def test_an_unknown_template_fails_the_job_at_once_naming_the_field(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_job(
        client, keys, project_id, model=str(tiny_models.causal_lm), template="nope", batch_size=2
    )
    assert run_judge_worker(session_factory) == 1  # no retries: every row died with the first
    failed = get_job(client, keys, job["id"])
    assert failed["status"] == "failed"
    assert "config.template" in failed["error"] and "helpfulness" in failed["error"]
    assert failed["progress"]["dead"] == len(PAIRS)


BAD_TEMPLATE = {"name": "t", "system": "{rubric}", "pairwise": "{prompt}", "binary": "x"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "/no/such/model"}, "config.model"),
        ({"backend": "openai", "model": "m"}, "config.base_url"),
        ({"backend": "openai", "model": "m", "base_url": "http://h/v1"}, "config.tokenizer"),
        ({"tokenizer": "smollm2"}, "config.tokenizer"),
        ({"base_url": "http://h/v1"}, "config.base_url"),
        ({"tie_band": 0.7}, "judge.config.tie_band"),
        ({"orders": "three"}, "judge.config.orders"),
        ({"items": {"item_ids": [999999]}}, "config.items"),
        ({"colour": "red"}, "judge.config.colour"),
        (
            {
                "custom_template": {
                    "name": "t",
                    "system": "{rubric}",
                    "pairwise": "{prompt}",
                    "binary": "x",
                }
            },
            "judge.config.custom_template",
        ),
    ],
)
def test_bad_job_requests_are_refused_naming_the_field(
    client: TestClient, keys: Keys, config: dict[str, object], field: str
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    response = client.post(
        "/v1/jobs",
        json={"kind": "judge", "project_id": project_id, "config": config},
        headers=Keys.auth(keys.operator),
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_a_job_on_an_unknown_project_is_404(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/jobs", json={"kind": "judge", "project_id": 4242}, headers=Keys.auth(keys.operator)
    )
    assert response.status_code == 404


def test_default_model_name_needs_no_folder(tmp_path: Path) -> None:
    from service.domain.jobs import check_model

    check_model({"backend": "transformers", "model": "smollm2"})
