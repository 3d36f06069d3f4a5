"""Bulk imports: every format, line-numbered errors, nothing half-written."""

import io

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory
from service.domain import imports
from service.domain.auth import create_key
from service.domain.projects import create_project
from service.models import (
    FeedbackKind,
    HumanLabel,
    Import,
    Item,
    LabelOrigin,
    Prompt,
    Response,
    Role,
)
from tests.conftest import HH_SAMPLE, Keys
from tests.service.helpers import import_rows, jsonl, lease, make_project


def _operator_and_project(factory: sessionmaker[Session]) -> tuple[int, int]:
    """An operator and a pairwise project of theirs, made in the domain: (user id, project id)."""
    with factory() as s:
        _, user, _ = create_key(s, "op", Role.operator)
        project = create_project(
            s,
            name="p",
            kind=FeedbackKind.pairwise,
            overlap=1,
            lease_seconds=60,
            instructions="",
            created_by_id=user.id,
        )
    return user.id, project.id


def _count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_arbiter_rows_create_items_with_responses_in_order(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys, "listwise")
    rows = [{"prompt": "p", "responses": ["r1", "r2", "r3"], "external_id": "e1", "tags": ["x"]}]
    report = import_rows(client, keys, project_id, rows).json()
    assert report["status"] == "completed"
    assert (report["lines_total"], report["items_created"], report["labels_created"]) == (1, 1, 0)
    items = client.get(f"/v1/projects/{project_id}/items", headers=Keys.auth(keys.operator)).json()[
        "data"
    ]
    assert [r["text"] for r in items[0]["responses"]] == ["r1", "r2", "r3"]
    assert (items[0]["external_id"], items[0]["tags"]) == ("e1", ["x"])


def test_a_malformed_line_is_reported_by_number_and_nothing_is_written(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    body = (
        jsonl([{"prompt": "p", "responses": ["a", "b"]}] * 20)
        + b"{not json\n"
        + jsonl([{"prompt": "p", "responses": ["a"]}])
    )
    response = client.post(
        f"/v1/projects/{project_id}/imports",
        content=body,
        headers={**Keys.auth(keys.operator), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 422
    errors = response.json()["report"]["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(21, None), (22, "responses")]
    assert _count(session_factory, Item) == 0
    assert _count(session_factory, Response) == 0


def test_skip_mode_imports_the_good_lines_and_lists_the_bad(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": f"p{n}", "responses": ["a", "b"]} for n in range(10)]
    rows[4] = {"prompt": "", "responses": ["a", "b"]}
    report = import_rows(client, keys, project_id, rows, on_error="skip").json()
    assert report["status"] == "partial"
    assert (report["lines_imported"], report["items_created"]) == (9, 9)
    assert report["errors"] == [
        {"line": 5, "field": "prompt", "message": "'prompt' must not be empty"}
    ]
    assert _count(session_factory, Item) == 9


def test_trl_preference_rows_import_with_their_preference_as_labels(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": f"p{n}", "chosen": f"good{n}", "rejected": f"bad{n}"} for n in range(12)]
    report = import_rows(client, keys, project_id, rows, fmt="trl-preference").json()
    assert (report["items_created"], report["labels_created"]) == (12, 12)
    with session_factory() as s:
        origins = set(s.scalars(select(HumanLabel.origin)))
    assert origins == {LabelOrigin.imported}


def test_labels_false_imports_the_pairs_without_their_preferences(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": "p", "chosen": "good", "rejected": "bad"}]
    report = import_rows(
        client, keys, project_id, rows, fmt="trl-preference", labels="false"
    ).json()
    assert (report["items_created"], report["labels_created"]) == (1, 0)


def test_trl_kto_rows_fill_a_binary_project(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys, "binary")
    rows = [
        {"prompt": "p", "completion": "c", "label": True},
        {"prompt": "p", "completion": "d", "label": False},
    ]
    report = import_rows(client, keys, project_id, rows, fmt="trl-kto").json()
    assert (report["items_created"], report["labels_created"]) == (2, 2)


def test_a_format_that_does_not_fit_the_project_kind_is_rejected(
    client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys, "binary")
    response = import_rows(
        client,
        keys,
        project_id,
        [{"prompt": "p", "chosen": "a", "rejected": "b"}],
        fmt="trl-preference",
    )
    assert response.status_code == 422
    assert response.json()["field"] == "format"


def test_identical_prompts_are_stored_once(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": "same", "responses": [f"a{n}", f"b{n}"]} for n in range(20)]
    import_rows(client, keys, project_id, rows)
    import_rows(client, keys, project_id, rows)
    assert _count(session_factory, Prompt) == 1
    assert _count(session_factory, Item) == 40


def test_reimporting_rows_with_external_ids_creates_no_duplicates(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    rows = [
        {"prompt": f"p{n}", "responses": ["a", "b"], "external_id": f"id{n}"} for n in range(15)
    ]
    import_rows(client, keys, project_id, rows)
    again = import_rows(client, keys, project_id, rows).json()
    assert (again["items_created"], again["lines_imported"], again["duplicates_skipped"]) == (
        0,
        0,
        15,
    )
    assert _count(session_factory, Item) == 15


def test_a_file_repeating_an_external_id_is_rejected_at_the_repeat(
    client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": "p", "responses": ["a", "b"], "external_id": "same"}] * 2
    response = import_rows(client, keys, project_id, rows)
    assert response.json()["report"]["errors"][0]["line"] == 2


def test_an_empty_file_is_rejected(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    response = import_rows(client, keys, project_id, [])
    assert response.status_code == 422
    assert response.json()["field"] == "body"


def test_a_multipart_file_upload_imports_like_a_raw_body(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    data = jsonl([{"prompt": "p", "responses": ["a", "b"]}])
    response = client.post(
        f"/v1/projects/{project_id}/imports",
        files={"file": ("pairs.jsonl", io.BytesIO(data), "application/x-ndjson")},
        headers=Keys.auth(keys.operator),
    )
    assert response.status_code == 201
    assert response.json()["items_created"] == 1


def test_the_report_can_be_read_back(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    report = import_rows(
        client, keys, project_id, [{"prompt": "p", "responses": ["a", "b"]}]
    ).json()
    again = client.get(
        f"/v1/projects/{project_id}/imports/{report['id']}", headers=Keys.auth(keys.operator)
    )
    assert again.json() == report


def test_the_hh_rlhf_sample_imports_every_line_as_a_pair_with_its_label(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = make_project(client, keys)
    response = client.post(
        f"/v1/projects/{project_id}/imports",
        params={"format": "hh-rlhf"},
        content=HH_SAMPLE.read_bytes(),
        headers={**Keys.auth(keys.operator), "Content-Type": "application/x-ndjson"},
    )
    report = response.json()
    assert response.status_code == 201, report
    assert (report["lines_total"], report["items_created"], report["labels_created"]) == (
        1000,
        1000,
        1000,
    )
    first = orjson.loads(HH_SAMPLE.read_bytes().splitlines()[0])
    item = client.get(
        f"/v1/projects/{project_id}/items", params={"limit": 1}, headers=Keys.auth(keys.operator)
    ).json()["data"][0]
    assert first["chosen"].startswith(item["prompt"])
    assert item["prompt"].endswith("\n\nAssistant:")
    choice = item["labels"][0]["value"]["choice"]
    chosen_text = item["responses"][0 if choice == "a" else 1]["text"]
    assert first["chosen"] == item["prompt"] + chosen_text


def test_a_database_failure_mid_import_removes_the_batches_already_written(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    user_id, project_id = _operator_and_project(factory)
    calls = []
    real = imports._BatchWriter._drop_known_external_ids

    def fail_on_third_batch(self: imports._BatchWriter, records: list) -> list:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real(self, records)

    monkeypatch.setattr(imports._BatchWriter, "_drop_known_external_ids", fail_on_third_batch)
    rows = jsonl([{"prompt": f"p{n}", "responses": ["a", "b"]} for n in range(25)])
    with factory() as s, pytest.raises(RuntimeError):
        imports.run_import(
            s, project_id, io.BytesIO(rows), imports.ImportOptions(batch_size=10), user_id
        )
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0
        report = s.scalar(select(Import))
        assert report is not None and (report.status, report.lines_imported) == ("failed", 0)


def test_items_of_an_import_are_offered_only_once_it_has_finished(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = make_project(client, keys)
    seen: list[int] = []
    real_finish = imports._finish

    def lease_before_finishing(session, import_id, status):  # type: ignore[no-untyped-def]
        seen.append(lease(client, keys.annotator, project_id).status_code)
        return real_finish(session, import_id, status)

    monkeypatch.setattr(imports, "_finish", lease_before_finishing)
    import_rows(client, keys, project_id, [{"prompt": "p", "responses": ["a", "b"]}])
    assert seen == [204]
    assert lease(client, keys.annotator, project_id).status_code == 200


def test_postgres_import_batches_plan_each_statement_and_the_setting_ends_with_them(
    pg_url: str,
) -> None:
    # One pooled connection, so the check after the import reads the connection it used.
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    factory = make_session_factory(engine)
    user_id, project_id = _operator_and_project(factory)
    modes: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def read_mode(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO items"):
            modes.append(cursor.connection.execute("SHOW plan_cache_mode").fetchone()[0])

    rows = jsonl([{"prompt": f"p{n}", "responses": ["a", "b"]} for n in range(25)])
    with factory() as s:
        report = imports.run_import(
            s, project_id, io.BytesIO(rows), imports.ImportOptions(batch_size=10), user_id
        )
    with factory() as s:
        after = s.scalar(text("SHOW plan_cache_mode"))
    engine.dispose()

    assert report.lines_imported == 25
    assert modes == ["force_custom_plan"] * 3  # each of the three batches
    assert after == "auto"
