"""Annotators lease items under overlap and lease rules and submit labels idempotently."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.models import Assignment, HumanLabel, Item
from tests.conftest import Keys
from tests.service.helpers import import_rows, lease, make_project, submit


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Leases and submits run on SQLite and on PostgreSQL (different code paths)."""
    return any_db_url


@pytest.fixture(params=[True, False], ids=["quick-submit", "route-only"])
def settings(db_url: str, request: pytest.FixtureRequest) -> Settings:
    """Every rule holds with common-case submits answered by the quick path (which needs
    cached keys) and with the route alone."""
    return Settings(database_url=db_url, auth_cache_seconds=60, quick_submit=request.param)


PAIRS = [{"prompt": f"q{n}", "responses": [f"a{n}", f"b{n}"]} for n in range(3)]


def _project_with_items(
    client: TestClient, keys: Keys, overlap: int = 1, rows=PAIRS, kind="pairwise"
) -> int:
    project_id = make_project(client, keys, kind, overlap=overlap)
    assert import_rows(client, keys, project_id, rows).status_code == 201
    return project_id


def test_lease_returns_item_with_responses_and_instructions(client: TestClient, keys: Keys) -> None:
    project_id = _project_with_items(client, keys)
    client.patch(
        f"/v1/projects/{project_id}",
        json={"instructions": "be kind"},
        headers=Keys.auth(keys.operator),
    )
    body = lease(client, keys.annotator, project_id).json()
    assert body["item"]["prompt"] == "q0"
    assert [r["text"] for r in body["item"]["responses"]] == ["a0", "b0"]
    assert body["item"]["labels"] == []
    assert body["instructions"] == "be kind"


def test_progress_counts_done_and_remaining_including_the_current_lease(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys)
    url = f"/v1/projects/{project_id}/progress"
    assignment = lease(client, keys.annotator, project_id).json()
    assert client.get(url, headers=Keys.auth(keys.annotator)).json() == {"done": 0, "remaining": 3}
    submit(client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "a"})
    assert client.get(url, headers=Keys.auth(keys.annotator)).json() == {"done": 1, "remaining": 2}


def test_asking_again_returns_the_same_unexpired_lease(client: TestClient, keys: Keys) -> None:
    project_id = _project_with_items(client, keys)
    first = lease(client, keys.annotator, project_id).json()
    assert lease(client, keys.annotator, project_id).json()["id"] == first["id"]


def test_an_item_goes_to_at_most_overlap_distinct_annotators(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys, overlap=2, rows=PAIRS[:1])
    got = [lease(client, k, project_id) for k in (keys.annotator, keys.annotator2, keys.annotator3)]
    assert [r.status_code for r in got] == [200, 200, 204]


def test_an_annotator_never_gets_the_same_item_twice(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project_with_items(client, keys, overlap=3, rows=PAIRS[:2])
    seen = []
    while (r := lease(client, keys.annotator, project_id)).status_code == 200:
        seen.append(r.json()["item"]["id"])
        assert (
            submit(
                client, keys.annotator, r.json()["id"], {"kind": "pairwise", "choice": "a"}
            ).status_code
            == 201
        )
    assert r.status_code == 204
    assert len(seen) == len(set(seen)) == 2


def test_an_expired_lease_returns_the_item_to_the_pool(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project_with_items(client, keys, overlap=1, rows=PAIRS[:1])
    first = lease(client, keys.annotator, project_id).json()
    assert lease(client, keys.annotator2, project_id).status_code == 204
    with session_factory() as s:
        s.execute(
            update(Assignment).values(
                lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
        s.commit()
    second = lease(client, keys.annotator2, project_id)
    assert second.status_code == 200
    assert second.json()["item"]["id"] == first["item"]["id"]
    late = submit(client, keys.annotator, first["id"], {"kind": "pairwise", "choice": "a"})
    assert late.status_code == 409
    assert late.json()["field"] == "assignment_id"


def test_a_late_submit_is_accepted_while_the_item_still_has_room(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project_with_items(client, keys, overlap=1, rows=PAIRS[:1])
    first = lease(client, keys.annotator, project_id).json()
    with session_factory() as s:
        s.execute(
            update(Assignment).values(
                lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
        s.commit()
    assert (
        submit(client, keys.annotator, first["id"], {"kind": "pairwise", "choice": "b"}).status_code
        == 201
    )


def test_a_retried_submit_returns_the_first_label_and_creates_nothing(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    project_id = _project_with_items(client, keys)
    assignment = lease(client, keys.annotator, project_id).json()
    body = {"kind": "pairwise", "choice": "tie", "strength": 2, "rationale": "both fine"}
    first = submit(client, keys.annotator, assignment["id"], body)
    again = submit(client, keys.annotator, assignment["id"], body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(HumanLabel)) == 1
        assert s.scalar(select(Item.label_count).where(Item.id == assignment["item"]["id"])) == 1


def test_a_different_label_on_a_submitted_assignment_is_a_conflict(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys)
    assignment = lease(client, keys.annotator, project_id).json()
    submit(client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "a"})
    again = submit(client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "b"})
    assert again.status_code == 409


def test_an_idempotency_key_reused_on_another_assignment_is_a_conflict(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys)
    first = lease(client, keys.annotator, project_id).json()
    submit(
        client,
        keys.annotator,
        first["id"],
        {"kind": "pairwise", "choice": "a"},
        **{"Idempotency-Key": "k1"},
    )
    second = lease(client, keys.annotator, project_id).json()
    reuse = submit(
        client,
        keys.annotator,
        second["id"],
        {"kind": "pairwise", "choice": "a"},
        **{"Idempotency-Key": "k1"},
    )
    assert reuse.status_code == 409
    assert reuse.json()["field"] == "Idempotency-Key"


def test_annotators_cannot_see_or_submit_others_assignments(client: TestClient, keys: Keys) -> None:
    project_id = _project_with_items(client, keys)
    assignment = lease(client, keys.annotator, project_id).json()
    other = submit(client, keys.annotator2, assignment["id"], {"kind": "pairwise", "choice": "a"})
    assert other.status_code == 404
    assert (
        client.get(
            f"/v1/assignments/{assignment['id']}", headers=Keys.auth(keys.annotator2)
        ).status_code
        == 404
    )


def test_a_skipped_item_frees_its_slot_and_is_not_offered_again(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys, rows=PAIRS[:1])
    assignment = lease(client, keys.annotator, project_id).json()
    skipped = client.post(
        f"/v1/assignments/{assignment['id']}/skip", headers=Keys.auth(keys.annotator)
    )
    assert skipped.json()["status"] == "skipped"
    assert lease(client, keys.annotator, project_id).status_code == 204
    assert lease(client, keys.annotator2, project_id).status_code == 200
    assert (
        submit(
            client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "a"}
        ).status_code
        == 409
    )


def test_a_label_of_the_wrong_kind_is_rejected_naming_the_field(
    client: TestClient, keys: Keys
) -> None:
    project_id = _project_with_items(client, keys)
    assignment = lease(client, keys.annotator, project_id).json()
    wrong = submit(client, keys.annotator, assignment["id"], {"kind": "binary", "rating": "up"})
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "kind"


def test_malformed_label_bodies_get_422_naming_the_field(client: TestClient, keys: Keys) -> None:
    project_id = _project_with_items(client, keys)
    assignment = lease(client, keys.annotator, project_id).json()
    bad_strength = submit(
        client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "a", "strength": 4}
    )
    bad_choice = submit(
        client, keys.annotator, assignment["id"], {"kind": "pairwise", "choice": "c"}
    )
    assert bad_strength.status_code == bad_choice.status_code == 422
    assert bad_strength.json()["field"] == "pairwise.strength"
    assert bad_choice.json()["field"] == "pairwise.choice"


def test_listwise_ranking_must_be_a_permutation_ties_allowed(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    rows = [{"prompt": "q", "responses": ["x", "y", "z"]}]
    project_id = _project_with_items(client, keys, rows=rows, kind="listwise")
    assignment = lease(client, keys.annotator, project_id).json()
    x, y, z = (r["id"] for r in assignment["item"]["responses"])
    missing = submit(
        client, keys.annotator, assignment["id"], {"kind": "listwise", "ranking": [x, y]}
    )
    assert missing.status_code == 422
    assert missing.json()["field"] == "ranking"
    ok = submit(
        client, keys.annotator, assignment["id"], {"kind": "listwise", "ranking": [z, [x, y]]}
    )
    assert ok.status_code == 201
    assert ok.json()["value"] == {"ranking": [[z], [x, y]]}


def test_binary_feedback_is_up_or_down(client: TestClient, keys: Keys) -> None:
    rows = [{"prompt": "q", "responses": ["only"]}]
    project_id = _project_with_items(client, keys, rows=rows, kind="binary")
    assignment = lease(client, keys.annotator, project_id).json()
    ok = submit(
        client,
        keys.annotator,
        assignment["id"],
        {"kind": "binary", "rating": "down", "rationale": "rude"},
    )
    assert ok.status_code == 201
    assert ok.json()["value"] == {"rating": "down"}


def test_unknown_ids_are_404(client: TestClient, keys: Keys) -> None:
    assert lease(client, keys.annotator, 999999).status_code == 404
    assert (
        submit(client, keys.annotator, 999999, {"kind": "pairwise", "choice": "a"}).status_code
        == 404
    )


def test_raising_overlap_reopens_complete_items(client: TestClient, keys: Keys) -> None:
    project_id = _project_with_items(client, keys, rows=PAIRS[:1])
    a = lease(client, keys.annotator, project_id).json()
    submit(client, keys.annotator, a["id"], {"kind": "pairwise", "choice": "a"})
    assert lease(client, keys.annotator2, project_id).status_code == 204
    client.patch(
        f"/v1/projects/{project_id}", json={"overlap": 2}, headers=Keys.auth(keys.operator)
    )
    assert lease(client, keys.annotator2, project_id).status_code == 200
