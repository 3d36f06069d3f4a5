"""Operators create, list, page through and reconfigure projects."""

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.models import Project
from tests.conftest import Keys
from tests.service.helpers import import_rows


def _create(client: TestClient, keys: Keys, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/projects", json=body, headers=Keys.auth(keys.operator))


def test_a_created_project_is_stored_with_its_settings(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    response = _create(
        client, keys, name="p", kind="listwise", overlap=3, lease_seconds=60, instructions="rank"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["overlap"], body["lease_seconds"], body["instructions"]) == (
        "listwise",
        3,
        60,
        "rank",
    )
    with session_factory() as s:
        row = s.scalar(select(Project).where(Project.id == body["id"]))
        assert row is not None and (row.overlap, row.lease_seconds) == (3, 60)


def test_the_default_lease_comes_from_settings(client: TestClient, keys: Keys) -> None:
    assert _create(client, keys, name="p", kind="binary").json()["lease_seconds"] == 600


def test_a_duplicate_name_is_a_conflict_naming_the_field(client: TestClient, keys: Keys) -> None:
    _create(client, keys, name="p", kind="binary")
    again = _create(client, keys, name="p", kind="pairwise")
    assert (again.status_code, again.json()["code"], again.json()["field"]) == (
        409,
        "conflict",
        "name",
    )


def test_bad_settings_are_422_naming_the_field(client: TestClient, keys: Keys) -> None:
    for body, field in [
        ({"name": "p", "kind": "ternary"}, "kind"),
        ({"name": "p", "kind": "binary", "overlap": 0}, "overlap"),
        ({"name": "", "kind": "binary"}, "name"),
        ({"name": "p", "kind": "binary", "colour": "red"}, "colour"),
    ]:
        response = _create(client, keys, **body)
        assert (response.status_code, response.json()["field"]) == (422, field), body


def test_listing_pages_with_a_cursor(client: TestClient, keys: Keys) -> None:
    for n in range(5):
        _create(client, keys, name=f"p{n}", kind="binary")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/projects", params=params, headers=Keys.auth(keys.annotator)).json()
        seen += [p["name"] for p in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"p{n}" for n in range(5)]


def test_a_malformed_cursor_is_422(client: TestClient, keys: Keys) -> None:
    response = client.get(
        "/v1/projects", params={"cursor": "%%%"}, headers=Keys.auth(keys.operator)
    )
    assert (response.status_code, response.json()["field"]) == (422, "cursor")


def test_progress_counts_items_and_labels(client: TestClient, keys: Keys) -> None:
    project_id = _create(client, keys, name="p", kind="pairwise").json()["id"]
    import_rows(
        client,
        keys,
        project_id,
        [{"prompt": "q", "chosen": "a", "rejected": "b"}],
        fmt="trl-preference",
    )
    body = client.get(f"/v1/projects/{project_id}", headers=Keys.auth(keys.annotator)).json()
    assert (body["items_total"], body["items_complete"], body["labels_total"]) == (1, 0, 1)


def test_patch_changes_only_what_is_given(client: TestClient, keys: Keys) -> None:
    project_id = _create(client, keys, name="p", kind="pairwise", instructions="old").json()["id"]
    patched = client.patch(
        f"/v1/projects/{project_id}", json={"instructions": "new"}, headers=Keys.auth(keys.operator)
    ).json()
    assert (patched["name"], patched["instructions"]) == ("p", "new")


def test_the_feedback_kind_cannot_be_changed(client: TestClient, keys: Keys) -> None:
    project_id = _create(client, keys, name="p", kind="pairwise").json()["id"]
    response = client.patch(
        f"/v1/projects/{project_id}", json={"kind": "binary"}, headers=Keys.auth(keys.operator)
    )
    assert (response.status_code, response.json()["field"]) == (422, "kind")


def test_a_cursor_beyond_any_id_is_422(client: TestClient, keys: Keys) -> None:
    from service.domain.pagination import encode_cursor

    response = client.get(
        "/v1/projects", params={"cursor": encode_cursor(10**20)}, headers=Keys.auth(keys.operator)
    )
    assert (response.status_code, response.json()["field"]) == (422, "cursor")
