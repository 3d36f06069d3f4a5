"""The operators' pages in a real browser: projects with progress and agreement, judge
reports, jobs with live progress and cancel, starting jobs, export downloads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, lease, make_project, submit
from tests.web.conftest import Shots, sign_in
from tests.workers.judging import PAIRS, run_judge_worker, start_job

pytestmark = [pytest.mark.integration]  # a real server and a real browser


def _labeled_project(client: TestClient, keys: Keys) -> int:
    """A pairwise project with overlap 2 where two annotators labeled every item."""
    project_id = make_project(client, keys, "pairwise", overlap=2)
    assert import_rows(client, keys, project_id, PAIRS[:4]).status_code == 201
    for key, choices in ((keys.annotator, "aaba"), (keys.annotator2, "abba")):
        for choice in choices:
            assignment = lease(client, key, project_id).json()
            label = {"kind": "pairwise", "choice": choice}
            assert submit(client, key, assignment["id"], label).status_code == 201
    return project_id


def test_an_operator_sees_progress_and_agreement_and_downloads_an_export(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots, tmp_path: Path
) -> None:
    project_id = _labeled_project(client, keys)
    sign_in(page, server, keys.operator)
    row = page.get_by_role("row").filter(has_text="p-pairwise")
    expect(row).to_contain_text("4 / 4")
    agreement = client.get(
        f"/v1/projects/{project_id}/agreement", headers=Keys.auth(keys.operator)
    ).json()
    expect(row).to_contain_text(f"{agreement['krippendorff_alpha']:.2f}")
    shot(page, "projects")

    row.get_by_role("link").click()
    expect(page.locator("#agreement")).to_be_visible()
    expect(page.get_by_text("Cohen's kappa")).to_be_visible()
    expect(
        page.locator("dd").filter(has_text=f"{agreement['cohen_kappa']:.2f}").first
    ).to_be_visible()
    page.get_by_label("Format").select_option("dpo")
    page.get_by_label("File").select_option("jsonl")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = tmp_path / "export.jsonl"
    download.value.save_as(saved)
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    expected = client.get(
        f"/v1/projects/{project_id}/export", headers=Keys.auth(keys.operator)
    ).text.splitlines()
    assert len(rows) == len(expected) and {"prompt", "chosen", "rejected"} <= set(rows[0])
    expect(page.locator("#export-result")).to_contain_text(f"{len(rows)} rows exported")
    shot(page, "project")


def test_an_operator_starts_a_judge_job_watches_it_finish_and_reads_the_judge_report(
    page: Page,
    server: str,
    client: TestClient,
    keys: Keys,
    shot: Shots,
    session_factory: sessionmaker[Session],
    tiny_models: TinyModels,
) -> None:
    project_id = _labeled_project(client, keys)
    sign_in(page, server, keys.operator)
    page.goto(f"{server}/ui/project?id={project_id}")
    page.get_by_label("Kind").select_option("judge")
    config = {"model": str(tiny_models.causal_lm), "items": {"limit": 4}}
    page.get_by_label("Configuration (JSON)").fill(json.dumps(config))
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(re.compile(r".*/ui/jobs\?project=.*"))
    job_row = page.locator("tr[id^=job-]").first
    expect(job_row).to_contain_text("queued")

    run_judge_worker(session_factory)  # the page polls while the job is active
    expect(job_row).to_contain_text("succeeded", timeout=15_000)
    expect(job_row).to_contain_text("4 / 4")
    shot(page, "jobs")

    page.goto(f"{server}/ui/project?id={project_id}")
    judges = page.locator("#judges").locator("xpath=..")
    expect(judges).to_contain_text("helpfulness@1")
    report = client.get(
        f"/v1/projects/{project_id}/reports/judges", headers=Keys.auth(keys.operator)
    ).json()["judges"][0]
    expect(judges).to_contain_text(f"{report['first_position_win_rate']:.2f}")
    shot(page, "judge-report")


def test_an_operator_cancels_a_job_with_the_keyboard(
    page: Page, server: str, client: TestClient, keys: Keys, tiny_models: TinyModels
) -> None:
    project_id = make_project(client, keys, "pairwise")
    assert import_rows(client, keys, project_id, PAIRS).status_code == 201
    job = start_job(client, keys, project_id, model=str(tiny_models.causal_lm))
    sign_in(page, server, keys.operator)
    page.goto(f"{server}/ui/jobs")
    cancel = page.get_by_role("button", name=f"Cancel job {job['id']}")
    cancel.focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#job-{job['id']}")).to_contain_text("cancelled")
    state = client.get(f"/v1/jobs/{job['id']}", headers=Keys.auth(keys.operator)).json()
    assert state["status"] == "cancelled"


def test_an_annotator_key_sees_no_operator_navigation(page: Page, server: str, keys: Keys) -> None:
    sign_in(page, server, keys.annotator)
    expect(page.get_by_role("link", name="Annotate")).to_be_visible()
    expect(page.get_by_role("link", name="Jobs")).to_have_count(0)


def test_a_wrong_key_is_refused_on_the_sign_in_page(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/")
    page.keyboard.type("arb_not-a-real-key")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("not accepted")
    expect(page.get_by_label("API key")).to_be_focused()
