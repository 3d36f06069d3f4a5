"""Constitution jobs end to end on tiny models: endpoint -> worker -> chains, pairs, exports.

Run on SQLite and PostgreSQL (the `db_url` fixture). The reply model answers every chat turn
with the same text, so a chain's first revision is usable and its second is unchanged; the
random model never ends its turn, so with a small token limit every critique is cut off.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.models import (
    AILabel,
    Constitution,
    Item,
    ItemResponse,
    JobKind,
    Response,
    RevisionChain,
    RevisionStep,
)
from service.worker import Worker
from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, lease, make_project, submit
from tests.support.tiny_models import REPLY
from tests.workers.judging import PAIRS, SINGLES, get_job, project_with_items
from tests.workers.revising import (
    chains,
    post_constitution_job,
    run_constitution_worker,
    start_constitution_job,
)
from workers.constitution_job import ConstitutionHandler

N_RESPONSES = 2 * len(PAIRS)


def _export(client: TestClient, keys: Keys, project_id: int, **params: Any) -> list[Any]:
    response = client.get(
        f"/v1/projects/{project_id}/export", params=params, headers=Keys.auth(keys.operator)
    )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in io.StringIO(response.text) if line.strip()]


def test_each_response_gets_a_chain_of_rounds_and_a_constitutional_pair(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client, keys, project_id, model=str(tiny_models.reply_lm), rounds=2, max_tokens=24
    )
    assert job["progress"]["total"] == N_RESPONSES
    assert job["config"]["version"] == 1  # the version it runs, recorded at the start

    run_constitution_worker(session_factory)

    done = get_job(client, keys, job["id"])
    assert done["status"] == "succeeded", done
    assert done["metrics"]["responses"] == N_RESPONSES
    assert done["metrics"]["revised"] == N_RESPONSES
    assert done["metrics"]["outcome_unchanged"] == N_RESPONSES
    stored = chains(client, keys, job["id"])
    assert len(stored) == N_RESPONSES
    for chain in stored:
        assert chain["status"] == "revised" and chain["final_revision"] == REPLY
        assert chain["constitution"] == "arbiter-default@1"
        assert chain["backend"] == "transformers" and chain["model"] == str(tiny_models.reply_lm)
        assert chain["generation"]["max_tokens"] == 24 and chain["generation"]["rounds"] == 2
        first, second = chain["steps"]
        assert (first["critique"], first["critique_outcome"]) == (REPLY, "ok")
        assert (first["revision"], first["revision_outcome"]) == (REPLY, "ok")
        assert second["revision_outcome"] == "unchanged"  # the same text again ends the chain
        assert first["principle"] != second["principle"]  # no repeat within a chain
    with session_factory() as session:
        for row in session.scalars(select(RevisionChain).where(RevisionChain.job_id == job["id"])):
            assert row.pair_item_id is not None and row.final_response_id is not None
            revision = session.get_one(Response, row.final_response_id)
            assert revision.revision_of_id == row.response_id
            assert revision.source == f"revision:{tiny_models.reply_lm}"
            item = session.get_one(Item, row.pair_item_id)
            assert item.project_id == project_id and item.tags == ["constitutional"]
            slots = session.scalars(
                select(ItemResponse.response_id)
                .where(ItemResponse.item_id == item.id)
                .order_by(ItemResponse.position)
            ).all()
            assert sorted(slots) == sorted([row.response_id, revision.id])
            label = session.scalars(select(AILabel).where(AILabel.item_id == item.id)).one()
            assert label.value == {"choice": "a" if slots[0] == revision.id else "b"}
            assert label.template == "constitution:arbiter-default@1"
            assert label.confidence is None  # no judge was asked


def test_constitutional_pairs_export_as_dpo_and_sft_rows_and_can_be_left_out(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.reply_lm),
        rounds=1,
        max_tokens=24,
        responses={"positions": [0]},
    )
    run_constitution_worker(session_factory)

    pairs = _export(client, keys, project_id, source="ai")
    assert len(pairs) == len(PAIRS)
    assert {(r["chosen"], r["source"]) for r in pairs} == {(REPLY, "constitution")}
    assert sorted(r["rejected"] for r in pairs) == sorted(p["responses"][0] for p in PAIRS)
    assert _export(client, keys, project_id, source="ai", constitutional="exclude") == []
    sft = _export(client, keys, project_id, source="ai", format="sft", constitutional="only")
    assert sorted((r["prompt"], r["completion"]) for r in sft) == sorted(
        (p["prompt"], REPLY) for p in PAIRS
    )
    # With source=both, an annotator's review of a pair stands in place of the AI's verdict.
    op = Keys.auth(keys.operator)
    items = client.get(
        f"/v1/projects/{project_id}/items", params={"tag": "constitutional"}, headers=op
    ).json()["data"]
    assert len(items) == len(PAIRS)
    reviewed = 0
    while (assignment := lease(client, keys.annotator, project_id)).status_code == 200:
        body = assignment.json()
        if "constitutional" in body["item"]["tags"]:
            reviewed += 1
        label = {"kind": "pairwise", "choice": "a"}
        assert submit(client, keys.annotator, body["id"], label).status_code == 201
    both = _export(client, keys, project_id, source="both", constitutional="only")
    assert reviewed == len(PAIRS)
    assert {r["source"] for r in both} == {"human"}


def test_a_generation_cut_at_max_tokens_is_recorded_and_never_becomes_a_revision(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.causal_lm),
        max_tokens=4,
        responses={"limit": 3},
    )
    run_constitution_worker(session_factory)

    assert get_job(client, keys, job["id"])["metrics"]["unrevised"] == 3
    for chain in chains(client, keys, job["id"]):
        assert chain["status"] == "unrevised" and chain["final_revision"] is None
        [step] = chain["steps"]
        assert step["critique_outcome"] in ("too_long", "looping")
        assert step["critique_tokens"] == 4
        assert step["revision"] is None and step["revision_outcome"] is None
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(Response.revision_of_id.is_not(None))) == 0
        assert session.scalar(select(func.count()).where(AILabel.job_id == job["id"])) == 0


def test_the_judges_confirmation_is_stored_and_only_confirmed_pairs_are_kept(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.reply_lm),
        rounds=1,
        max_tokens=24,
        confirm={"template": "harmlessness", "tie_band": 0.0},
    )
    run_constitution_worker(session_factory)

    stored = chains(client, keys, job["id"])
    assert all(c["p_confirmed"] is not None for c in stored)
    for chain in stored:
        confirmed = chain["p_confirmed"] > 0.5
        assert chain["status"] == ("revised" if confirmed else "rejected")
        assert (chain["pair_item_id"] is not None) == confirmed
        assert chain["final_revision"] == REPLY  # a rejected revision is still on record
    with session_factory() as session:
        labels = session.scalars(select(AILabel).where(AILabel.job_id == job["id"])).all()
    kept = [c for c in stored if c["status"] == "revised"]
    assert len(labels) == len(kept)
    for label in labels:
        p = label.scores["p_revision_better"]
        assert label.confidence == pytest.approx(abs(2 * p - 1))
        assert label.position_consistent is not None


def test_a_binary_projects_responses_are_paired_in_the_pairs_project(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    source = project_with_items(client, keys, "binary")
    refused = post_constitution_job(client, keys, source, model=str(tiny_models.reply_lm))
    assert refused.status_code == 422 and refused.json()["field"] == "config.pairs_project_id"
    pairs_project = make_project(client, keys, "pairwise")
    job = start_constitution_job(
        client,
        keys,
        source,
        model=str(tiny_models.reply_lm),
        rounds=1,
        max_tokens=24,
        pairs_project_id=pairs_project,
    )
    run_constitution_worker(session_factory)

    assert get_job(client, keys, job["id"])["status"] == "succeeded"
    rows = _export(client, keys, pairs_project, source="ai")
    assert sorted((r["prompt"], r["chosen"], r["rejected"]) for r in rows) == sorted(
        (s["prompt"], REPLY, s["responses"][0]) for s in SINGLES
    )
    with session_factory() as session:  # the pair's responses all belong to the pairs project
        for row in session.scalars(select(RevisionChain).where(RevisionChain.job_id == job["id"])):
            revision = session.get_one(Response, row.final_response_id)
            original = session.get_one(Response, revision.revision_of_id)
            assert (
                original.prompt_id
                == revision.prompt_id
                != (session.get_one(Response, row.response_id).prompt_id)
            )
    refused_kto = client.get(
        f"/v1/projects/{source}/export", params={"format": "dpo"}, headers=Keys.auth(keys.operator)
    )
    assert refused_kto.status_code == 422  # the binary project itself got no pairs


def test_an_unknown_confirm_template_fails_the_job_before_any_generation(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client, keys, project_id, model=str(tiny_models.reply_lm), confirm={"template": "nope"}
    )
    run_constitution_worker(session_factory)
    failed = get_job(client, keys, job["id"])
    assert failed["status"] == "failed"
    assert "config.confirm.config.template" not in failed["error"]
    assert "config.confirm.template" in failed["error"]
    assert chains(client, keys, job["id"]) == []


def test_a_conversation_too_long_for_the_model_ends_its_chain_without_failing_the_batch(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = make_project(client, keys, "pairwise")
    rows = [
        {"prompt": "Tell me a joke.", "responses": ["Why?", "No."]},
        {"prompt": "hi " * 4000, "responses": ["Hello!", "Hey."]},  # beyond 4096 positions
    ]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    job = start_constitution_job(
        client, keys, project_id, model=str(tiny_models.reply_lm), rounds=1, max_tokens=24
    )
    run_constitution_worker(session_factory)

    assert get_job(client, keys, job["id"])["status"] == "succeeded"
    stored = {c["original"]: c for c in chains(client, keys, job["id"])}
    assert stored["Why?"]["status"] == stored["No."]["status"] == "revised"
    for original in ("Hello!", "Hey."):
        [step] = stored[original]["steps"]
        assert stored[original]["status"] == "unrevised"
        assert (step["critique_outcome"], step["critique_tokens"]) == ("too_long", 0)


def test_a_job_runs_the_constitution_version_it_started_with(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.reply_lm),
        rounds=1,
        max_tokens=24,
        responses={"limit": 2},
    )
    edited = client.put(
        "/v1/constitutions/arbiter-default",
        json={"principles": [{"name": "new", "critique_request": "?", "revision_request": "!"}]},
        headers=Keys.auth(keys.operator),
    )
    assert edited.status_code == 201 and edited.json()["version"] == 2
    run_constitution_worker(session_factory)
    with session_factory() as session:
        used = session.scalars(
            select(Constitution.version)
            .join(RevisionChain, RevisionChain.constitution_id == Constitution.id)
            .where(RevisionChain.job_id == job["id"])
        ).all()
    assert used == [1, 1]
    assert {c["steps"][0]["principle"] for c in chains(client, keys, job["id"])} != {"new"}


def test_cancelling_a_constitution_job_stores_nothing(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client, keys, project_id, model=str(tiny_models.reply_lm), max_tokens=24, batch_size=4
    )
    with session_factory() as session:
        claim = queue.claim(session, JobKind.constitution, "w-early", limit=None, lease_seconds=30)
    assert claim is not None and len(claim.units) == 4
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=Keys.auth(keys.operator))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    handler = ConstitutionHandler()
    Worker(session_factory, JobKind.constitution, handler, worker_id="w-early").run_batch(claim)
    assert run_constitution_worker(session_factory) == 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(RevisionChain)) == 0
        assert session.scalar(select(func.count()).select_from(RevisionStep)) == 0
        assert session.scalar(select(func.count()).where(Item.tags.is_not(None))) == len(PAIRS)


def test_an_unreachable_model_server_is_retried_then_fails_the_job_with_its_error(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    job = start_constitution_job(
        client,
        keys,
        project_id,
        backend="openai",
        model="served",
        base_url="http://127.0.0.1:9/v1",  # nothing listens on the discard port
        tokenizer=str(tiny_models.reply_lm),
        max_attempts=2,
        responses={"limit": 1},
    )
    worker = Worker(session_factory, JobKind.constitution, ConstitutionHandler(), lease_seconds=30)
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
    assert failed["status"] == "failed"
    assert failed["progress"]["dead"] == 1 and failed["progress"]["attempts"] == 2
    assert "ConnectError" in failed["error"]


@pytest.mark.parametrize(
    ("config", "status", "field"),
    [
        ({"constitution": "nope"}, 422, "config.constitution"),
        ({"version": 9}, 422, "config.version"),
        ({"principles": ["no-harm", "flattery"]}, 422, "config.principles"),
        ({"rounds": 0}, 422, "constitution.config.rounds"),
        ({"max_tokens": 0}, 422, "constitution.config.max_tokens"),
        ({"temperature": -1}, 422, "constitution.config.temperature"),
        ({"responses": {"item_ids": [999999]}}, 422, "config.responses"),
        ({"responses": {"positions": [7]}}, 422, "config.responses"),
        ({"model": "/no/such/model"}, 422, "config.model"),
        ({"pairs_project_id": 4242}, 404, "config.pairs_project_id"),
        ({"confirm": {"tie_band": 2}}, 422, "constitution.config.confirm.tie_band"),
    ],
)
def test_bad_constitution_job_requests_are_refused_naming_the_field(
    client: TestClient, keys: Keys, config: dict[str, Any], status: int, field: str
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    response = post_constitution_job(client, keys, project_id, **config)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_pairs_go_only_to_a_pairwise_project(client: TestClient, keys: Keys) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    listwise = make_project(client, keys, "listwise")
    response = post_constitution_job(client, keys, project_id, pairs_project_id=listwise)
    assert response.status_code == 422 and response.json()["field"] == "config.pairs_project_id"


def test_a_second_job_leaves_out_constitutional_pairs_and_revised_responses_when_asked(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tiny_models: TinyModels
) -> None:
    project_id = project_with_items(client, keys, "pairwise")
    first = start_constitution_job(
        client,
        keys,
        project_id,
        model=str(tiny_models.reply_lm),
        rounds=1,
        max_tokens=24,
        responses={"limit": 3},
    )
    run_constitution_worker(session_factory)
    again = start_constitution_job(client, keys, project_id, responses={"skip_revised": True})
    # the pair items' responses are not picked, nor the three revised already
    assert again["progress"]["total"] == N_RESPONSES - 3
    with_pairs = start_constitution_job(
        client, keys, project_id, responses={"include_constitutional": True}
    )
    assert with_pairs["progress"]["total"] == N_RESPONSES + 3  # the three revisions too
    assert first["id"] < again["id"] < with_pairs["id"]
