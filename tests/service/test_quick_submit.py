"""Common-case submits are answered below the framework, exactly as the route would answer."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.config import Settings
from service.domain.items import LabelView
from service.models import Assignment, AssignmentStatus, HumanLabel, Item
from tests.conftest import Keys
from tests.service.helpers import import_rows, lease, make_project, submit

PAIRS = [{"prompt": f"q{n}", "responses": [f"a{n}", f"b{n}"]} for n in range(4)]


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """On SQLite (three statements, inline) and PostgreSQL (one statement, async pool)."""
    return any_db_url


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Keys are cached (the quick path answers only callers whose key is)."""
    return Settings(database_url=db_url, auth_cache_seconds=60)


class Answered:
    """Records what the quick path stored (None: it passed the request on to the route)."""

    def __init__(self, client: TestClient) -> None:
        self.results: list[LabelView | None] = []
        quick = client.app.state.quick_submit  # type: ignore[attr-defined]
        original = quick.submit

        async def recording(*args: Any) -> LabelView | None:
            result = await original(*args)
            self.results.append(result)
            return result

        quick.submit = recording

    def by_quick_path(self) -> list[bool]:
        """For each submit that reached the store, whether the quick path answered it."""
        return [result is not None for result in self.results]


@pytest.fixture
def answered(client: TestClient) -> Iterator[Answered]:
    yield Answered(client)


def _project(client: TestClient, keys: Keys, kind: str = "pairwise", overlap: int = 1) -> int:
    project_id = make_project(client, keys, kind, overlap=overlap)
    rows = PAIRS
    if kind == "binary":
        rows = [{"prompt": f"q{n}", "responses": [f"a{n}"]} for n in range(4)]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    return project_id


def _leased(client: TestClient, key: str, project_id: int) -> int:
    response = lease(client, key, project_id)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def test_a_common_case_submit_is_stored_by_the_quick_path_as_the_route_stores_it(
    client: TestClient, keys: Keys, answered: Answered, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(client, keys, overlap=1)
    assignment_id = _leased(client, keys.annotator, project_id)
    body = {"kind": "pairwise", "choice": "b", "strength": 3, "rationale": "clearer, ünïcode"}

    first = submit(client, keys.annotator, assignment_id, body)
    retry = submit(client, keys.annotator, assignment_id, body)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert answered.by_quick_path() == [True, False]  # the retry found no live lease: route
    # The route reads the row back through the ORM and answers the same bytes.
    assert first.content == retry.content
    assert first.json()["value"] == {"choice": "b", "strength": 3}
    with session_factory() as session:
        label = session.scalars(select(HumanLabel)).one()
        assignment = session.get(Assignment, assignment_id)
        assert assignment is not None
        item = session.get(Item, assignment.item_id)
    assert (label.kind.value, label.origin.value, label.rationale) == (
        "pairwise",
        "annotation",
        "clearer, ünïcode",
    )
    assert assignment.status == AssignmentStatus.submitted
    assert assignment.completed_at == label.created_at
    assert item is not None
    assert (item.label_count, item.is_complete) == (1, True)


def test_a_binary_label_with_an_idempotency_key_takes_the_quick_path(
    client: TestClient, keys: Keys, answered: Answered
) -> None:
    project_id = _project(client, keys, kind="binary")
    body = {"kind": "binary", "rating": "down"}

    first = _leased(client, keys.annotator, project_id)
    stored = submit(client, keys.annotator, first, body, **{"Idempotency-Key": "k-1"})
    second = _leased(client, keys.annotator, project_id)
    reused = submit(client, keys.annotator, second, body, **{"Idempotency-Key": "k-1"})

    assert stored.status_code == 201
    assert stored.json()["value"] == {"rating": "down"}
    # The reused key breaks the unique constraint: nothing written, the route says why.
    assert reused.status_code == 409
    assert reused.json()["field"] == "Idempotency-Key"
    assert answered.by_quick_path() == [True, False]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "pairwise", "choice": "a", "strength": "2"}, 201),  # coerced by the route
        ({"kind": "pairwise", "choice": "a", "strength": 4}, 422),
        ({"kind": "pairwise", "choice": "c"}, 422),
        ({"kind": "pairwise", "choice": "a", "extra": 1}, 422),
        ({"kind": "binary", "rating": "up"}, 422),  # not this item's kind
        ({"kind": "pairwise", "choice": "a", "rationale": "nul\u0000"}, 422),
    ],
)
def test_a_submit_the_schema_would_coerce_or_refuse_is_answered_by_the_route(
    client: TestClient, keys: Keys, answered: Answered, body: dict[str, Any], status: int
) -> None:
    project_id = _project(client, keys)
    assignment_id = _leased(client, keys.annotator, project_id)

    response = submit(client, keys.annotator, assignment_id, body)

    assert response.status_code == status, response.text
    assert True not in answered.by_quick_path()


def test_submits_on_leases_that_are_not_live_and_the_callers_go_to_the_route(
    client: TestClient, keys: Keys, answered: Answered, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(client, keys, overlap=2)
    expired = _leased(client, keys.annotator, project_id)
    foreign = _leased(client, keys.annotator2, project_id)
    with session_factory() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(
            update(Assignment).where(Assignment.id == expired).values(lease_expires_at=past)
        )
        session.commit()
    body = {"kind": "pairwise", "choice": "tie"}

    late = submit(client, keys.annotator, expired, body)
    not_mine = submit(client, keys.annotator, foreign, body)
    unknown = submit(client, keys.annotator, 99_999, body)

    # An expired lease is still taken while its item has a free slot (the route's rule).
    assert late.status_code == 201
    assert (not_mine.status_code, unknown.status_code) == (404, 404)
    assert answered.by_quick_path() == [False, False, False]


def test_an_uncached_key_or_a_listwise_label_never_reaches_the_quick_path(
    settings: Settings, keys: Keys
) -> None:
    uncached = settings.model_copy(update={"auth_cache_seconds": 0})
    with TestClient(create_app(uncached)) as client:
        recorded = Answered(client)
        project_id = _project(client, keys)
        ranked = _project(client, keys, kind="listwise")
        first = _leased(client, keys.annotator, project_id)
        listed = lease(client, keys.annotator, ranked).json()
        ranking = [r["id"] for r in listed["item"]["responses"]]

        plain = submit(client, keys.annotator, first, {"kind": "pairwise", "choice": "a"})
        listwise = submit(
            client, keys.annotator, listed["id"], {"kind": "listwise", "ranking": ranking}
        )

    assert (plain.status_code, listwise.status_code) == (201, 201)
    assert recorded.results == []


def test_with_quick_submit_off_the_app_has_no_quick_path(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"quick_submit": False}))) as client:
        assert getattr(client.app.state, "quick_submit", None) is None  # type: ignore[attr-defined]


def test_a_body_without_content_type_gets_the_routes_422_and_nothing_is_stored(
    client: TestClient, keys: Keys, answered: Answered, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project(client, keys)
    assignment_id = _leased(client, keys.annotator, project_id)

    response = client.post(
        f"/v1/assignments/{assignment_id}/labels",
        content=b'{"kind": "pairwise", "choice": "a"}',
        headers=Keys.auth(keys.annotator),
    )

    assert response.status_code == 422, response.text
    assert answered.results == []
    with session_factory() as session:
        assert session.scalars(select(HumanLabel)).all() == []


def test_one_pooled_connection_is_enough_for_leases_and_quick_submits(
    settings: Settings, keys: Keys
) -> None:
    # The quick path holds a connection of its own, never one of the app's pool.
    one = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    with TestClient(create_app(one)) as client:
        recorded = Answered(client)
        project_id = _project(client, keys)
        statuses = []
        for _ in range(3):
            assignment_id = _leased(client, keys.annotator, project_id)
            body = {"kind": "pairwise", "choice": "a"}
            statuses.append(submit(client, keys.annotator, assignment_id, body).status_code)

    assert statuses == [201, 201, 201]
    assert recorded.by_quick_path() == [True, True, True]


@pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)
def test_a_failed_sqlite_commit_writes_nothing_and_the_next_submit_is_stored(
    settings: Settings, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        project_id = _project(client, keys)
        assignment_id = _leased(client, keys.annotator, project_id)
        connection = client.app.state.quick_submit._conn  # type: ignore[attr-defined]
        # SQLite's authorizer refuses to prepare COMMIT: the transaction stays open, as after
        # a COMMIT that fails for real (e.g. a disk I/O error).
        connection.set_authorizer(
            lambda action, arg, *_: (
                sqlite3.SQLITE_DENY
                if (action, arg) == (sqlite3.SQLITE_TRANSACTION, "COMMIT")
                else sqlite3.SQLITE_OK
            )
        )
        body = {"kind": "pairwise", "choice": "a"}

        failed = submit(client, keys.annotator, assignment_id, body)
        with session_factory() as session:
            labels_after_failure = session.scalars(select(HumanLabel)).all()
            assignment = session.get(Assignment, assignment_id)
        connection.set_authorizer(None)
        stored = submit(client, keys.annotator, assignment_id, body)

    assert failed.status_code == 500
    assert labels_after_failure == []
    assert assignment is not None and assignment.status == AssignmentStatus.leased
    assert stored.status_code == 201
