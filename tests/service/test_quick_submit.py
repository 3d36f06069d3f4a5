"""Common-case submits are answered below the framework, exactly as the route would answer."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import httpx  # the httpx TestClient answers with (httpx2 or httpx)

from service.app import create_app
from service.config import Settings
from service.db import sqlite_write_lock
from service.domain.auth import KeyCache, Principal
from service.domain.items import LabelView
from service.models import Assignment, AssignmentStatus, HumanLabel, Item, Role, User
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


def _raw_pairwise_submit(
    client: TestClient, keys: Keys, headers: dict[str, str] | list[tuple[bytes, bytes]]
) -> httpx.Response:
    """A pairwise label, sent as raw bytes with exactly `headers`, on a fresh lease."""
    assignment_id = _leased(client, keys.annotator, _project(client, keys))
    return client.post(
        f"/v1/assignments/{assignment_id}/labels",
        content=b'{"kind": "pairwise", "choice": "a"}',
        headers=headers,
    )


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


@pytest.mark.parametrize("cache_seconds", [60, 0])
def test_a_key_not_in_the_cache_is_looked_up_by_the_quick_path_and_a_revoked_one_is_401(
    settings: Settings, keys: Keys, cache_seconds: int
) -> None:
    configured = settings.model_copy(update={"auth_cache_seconds": cache_seconds})
    with TestClient(create_app(configured)) as client:
        recorded = Answered(client)
        project_id = _project(client, keys)
        first = _leased(client, keys.annotator, project_id)
        second = _leased(client, keys.annotator, project_id)
        client.app.state.key_cache.clear()  # type: ignore[attr-defined]
        body = {"kind": "pairwise", "choice": "a"}

        plain = submit(client, keys.annotator, first, body)
        own_keys = client.get("/v1/keys", headers=Keys.auth(keys.admin)).json()["data"]
        annotators = [k["id"] for k in own_keys if k["user"] == "annotator"]
        for key_id in annotators:
            client.delete(f"/v1/keys/{key_id}", headers=Keys.auth(keys.admin))
        revoked = submit(client, keys.annotator, second, body)

    assert plain.status_code == 201
    assert revoked.status_code == 401
    assert recorded.by_quick_path() == [True]


def test_a_listwise_label_goes_to_the_route(
    client: TestClient, keys: Keys, answered: Answered
) -> None:
    ranked = _project(client, keys, kind="listwise")
    listed = lease(client, keys.annotator, ranked).json()
    ranking = [r["id"] for r in listed["item"]["responses"]]

    listwise = submit(
        client, keys.annotator, listed["id"], {"kind": "listwise", "ranking": ranking}
    )

    assert listwise.status_code == 201
    assert answered.results == []


def test_the_quick_answer_has_the_routes_status_headers_and_fields(
    client: TestClient, settings: Settings, keys: Keys, answered: Answered
) -> None:
    project_id = _project(client, keys)
    body = {"kind": "pairwise", "choice": "a", "rationale": "r"}
    quick = submit(client, keys.annotator, _leased(client, keys.annotator, project_id), body)
    with TestClient(create_app(settings.model_copy(update={"quick_submit": False}))) as other:
        routed = submit(other, keys.annotator, _leased(other, keys.annotator, project_id), body)

    assert answered.by_quick_path() == [True]
    assert quick.status_code == routed.status_code == 201
    assert [name for name, _ in quick.headers.items()] == [n for n, _ in routed.headers.items()]
    assert quick.headers["content-type"] == routed.headers["content-type"]
    different = {k for k in quick.json() if quick.json()[k] != routed.json()[k]}
    assert different == {"id", "item_id", "assignment_id", "created_at"}


def test_a_body_sent_in_chunks_is_read_whole_and_replayed_whole_to_the_route(
    client: TestClient, keys: Keys, answered: Answered
) -> None:
    project_id = _project(client, keys)
    url = "/v1/assignments/{}/labels"
    headers = {**Keys.auth(keys.annotator), "Content-Type": "application/json"}
    plain = [b'{"kind": "pair', b'wise", "choice"', b': "b"}']
    coerced = [b'{"kind": "pairwise", ', b'"choice": "a", "strength": "2"}']  # the route coerces

    quick = client.post(
        url.format(_leased(client, keys.annotator, project_id)),
        content=iter(plain),
        headers=headers,
    )
    routed = client.post(
        url.format(_leased(client, keys.annotator, project_id)),
        content=iter(coerced),
        headers=headers,
    )

    assert (quick.status_code, routed.status_code) == (201, 201)
    assert (quick.json()["value"], routed.json()["value"]) == (
        {"choice": "b", "strength": None},
        {"choice": "a", "strength": 2},
    )
    assert answered.by_quick_path() == [True]


@pytest.mark.parametrize(
    ("headers", "status", "field"),
    [
        ({"Idempotency-Key": "k" * 201}, 422, "Idempotency-Key"),  # over the route's limit
        ({"Content-Type": "text/plain"}, 422, None),
    ],
)
def test_headers_the_route_refuses_are_left_to_it(
    client: TestClient,
    keys: Keys,
    answered: Answered,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    response = _raw_pairwise_submit(
        client,
        keys,
        {**Keys.auth(keys.annotator), "Content-Type": "application/json", **headers},
    )

    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["field"] == field
    assert answered.results == []


def test_an_authorization_header_given_twice_is_left_to_the_route(
    client: TestClient, keys: Keys, answered: Answered
) -> None:
    auth = f"Bearer {keys.annotator}".encode()

    response = _raw_pairwise_submit(
        client,
        keys,
        [
            (b"Authorization", auth),
            (b"Authorization", auth),
            (b"Content-Type", b"application/json"),
        ],
    )

    assert response.status_code == 201
    assert answered.results == []


def test_behind_a_root_path_the_quick_path_still_answers(settings: Settings, keys: Keys) -> None:
    # As served with `uvicorn --root-path /arbiter`: the path keeps the prefix, and the
    # router matches what follows it.
    with TestClient(create_app(settings), root_path="/arbiter") as client:
        recorded = Answered(client)
        project_id = _project(client, keys)
        assignment_id = _leased(client, keys.annotator, project_id)

        response = client.post(
            f"/arbiter/v1/assignments/{assignment_id}/labels",
            json={"kind": "pairwise", "choice": "a"},
            headers=Keys.auth(keys.annotator),
        )

    assert response.status_code == 201, response.text
    assert recorded.by_quick_path() == [True]


@pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)
def test_a_lease_that_expires_while_the_submit_waits_for_the_writer_lock_counts_as_expired(
    settings: Settings, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    with TestClient(create_app(settings)) as client:
        project_id = _project(client, keys, overlap=1)
        assignment_id = _leased(client, keys.annotator, project_id)
        with session_factory() as session:
            mine = session.get_one(Assignment, assignment_id)
            mine.lease_expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
            session.commit()
        answers: list[Any] = []
        body = {"kind": "pairwise", "choice": "a"}
        writer_lock = sqlite_write_lock(client.app.state.engine)  # type: ignore[attr-defined]
        with writer_lock:  # another writer of this process holds the database meanwhile
            waiting = threading.Thread(
                target=lambda: answers.append(submit(client, keys.annotator, assignment_id, body))
            )
            waiting.start()
            time.sleep(1.5)
            # The lease has expired; the item went to another annotator, as a lease would.
            with session_factory() as session:
                other = session.scalars(select(User).where(User.name == "annotator2")).one()
                session.add(
                    Assignment(
                        project_id=project_id,
                        item_id=mine.item_id,
                        annotator_id=other.id,
                        lease_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
                    )
                )
                session.commit()
        waiting.join(timeout=30)

    assert answers[0].status_code == 409, answers[0].text
    assert answers[0].json()["message"] == "the lease expired and the item was given to others"
    with session_factory() as session:
        assert session.scalars(select(HumanLabel)).all() == []


def test_with_quick_submit_off_the_app_has_no_quick_path(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"quick_submit": False}))) as client:
        assert getattr(client.app.state, "quick_submit", None) is None  # type: ignore[attr-defined]


def test_a_body_without_content_type_gets_the_routes_422_and_nothing_is_stored(
    client: TestClient, keys: Keys, answered: Answered, session_factory: sessionmaker[Session]
) -> None:
    response = _raw_pairwise_submit(client, keys, Keys.auth(keys.annotator))

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


def test_a_key_with_spaces_around_it_is_read_as_the_route_reads_it(
    client: TestClient, keys: Keys, answered: Answered
) -> None:
    project_id = _project(client, keys)
    assignment_id = _leased(client, keys.annotator, project_id)

    response = client.post(
        f"/v1/assignments/{assignment_id}/labels",
        json={"kind": "pairwise", "choice": "a"},
        headers={"Authorization": f"bearer   {keys.annotator} "},
    )

    assert response.status_code == 201, response.text
    assert answered.by_quick_path() == [True]


def test_a_key_looked_up_before_a_revocation_is_not_cached_after_it() -> None:
    cache = KeyCache(ttl_seconds=60)
    owner = Principal(user_id=1, name="ann", role=Role.annotator)
    read_before = cache.generation  # a lookup starts and reads the key as live

    cache.clear()  # the key is revoked meanwhile
    cache.put("hash", owner, read_before)

    assert cache.get("hash") is None
