"""Constitutions through the API: the shipped default, create, edit as new versions, read."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.models import Constitution, Principle
from tests.conftest import Keys

KIND = {"name": "kind", "critique_request": "Is it unkind?", "revision_request": "Make it kind."}
TRUE = {"name": "true", "critique_request": "Is it false?", "revision_request": "Make it true."}


def _post(client: TestClient, keys: Keys, body: dict[str, Any]) -> Any:
    return client.post("/v1/constitutions", json=body, headers=Keys.auth(keys.operator))


def _put(client: TestClient, keys: Keys, name: str, body: dict[str, Any]) -> Any:
    return client.put(f"/v1/constitutions/{name}", json=body, headers=Keys.auth(keys.operator))


def test_the_default_constitution_covers_harmlessness_and_helpfulness(
    client: TestClient, keys: Keys
) -> None:
    response = client.get("/v1/constitutions/arbiter-default", headers=Keys.auth(keys.annotator))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    names = [p["name"] for p in body["principles"]]
    assert {"no-harm", "honesty", "privacy", "helpfulness"} <= set(names)
    assert all(p["critique_request"] and p["revision_request"] for p in body["principles"])


def test_a_new_constitution_is_version_1_and_a_second_create_is_a_conflict(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    created = _post(client, keys, {"name": "house", "description": "ours", "principles": [KIND]})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert [p["name"] for p in created.json()["principles"]] == ["kind"]
    again = _post(client, keys, {"name": "house", "principles": [TRUE]})
    assert again.status_code == 409 and again.json()["field"] == "name"
    assert "PUT" in again.json()["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(Constitution.name == "house")) == 1


def test_editing_writes_the_next_version_and_keeps_the_old_one_as_it_was(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    assert _post(client, keys, {"name": "house", "principles": [KIND]}).status_code == 201
    edited = _put(client, keys, "house", {"principles": [KIND, TRUE]})
    assert edited.status_code == 201, edited.text
    assert edited.json()["version"] == 2
    op = Keys.auth(keys.operator)
    latest = client.get("/v1/constitutions/house", headers=op).json()
    first = client.get("/v1/constitutions/house/versions/1", headers=op).json()
    assert latest["version"] == 2 and len(latest["principles"]) == 2
    assert first["version"] == 1 and [p["name"] for p in first["principles"]] == ["kind"]
    versions = client.get("/v1/constitutions/house/versions", headers=op).json()
    assert [v["version"] for v in versions] == [1, 2]
    with session_factory() as session:
        rows = session.scalars(
            select(Principle.constitution_id).join(Constitution).where(Constitution.name == "house")
        ).all()
    assert len(rows) == 3  # 1 + 2 principles: version 1 untouched


def test_an_edit_that_changes_nothing_writes_no_version(client: TestClient, keys: Keys) -> None:
    assert _post(client, keys, {"name": "house", "principles": [KIND]}).status_code == 201
    same = _put(client, keys, "house", {"principles": [KIND]})
    assert same.status_code == 200 and same.json()["version"] == 1


def test_the_listing_shows_each_constitutions_latest_version(
    client: TestClient, keys: Keys
) -> None:
    assert _post(client, keys, {"name": "house", "principles": [KIND]}).status_code == 201
    assert _put(client, keys, "house", {"principles": [TRUE]}).status_code == 201
    listed = client.get("/v1/constitutions", headers=Keys.auth(keys.operator)).json()["data"]
    assert {(c["name"], c["version"]) for c in listed} == {("arbiter-default", 1), ("house", 2)}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "principles": []}, "principles"),
        ({"name": "x", "principles": [KIND, KIND]}, "principles"),
        ({"name": "x y", "principles": [KIND]}, "name"),
        (
            {"name": "x", "principles": [{**KIND, "critique_request": ""}]},
            "principles.0.critique_request",
        ),
        (
            {"name": "x", "principles": [{"name": "kind", "critique_request": "?"}]},
            "principles.0.revision_request",
        ),
        ({"name": "x", "principles": [KIND], "colour": "red"}, "colour"),
    ],
)
def test_bad_constitutions_are_refused_naming_the_field(
    client: TestClient, keys: Keys, body: dict[str, Any], field: str
) -> None:
    response = _post(client, keys, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_unknown_constitutions_and_versions_are_404(client: TestClient, keys: Keys) -> None:
    op = Keys.auth(keys.operator)
    assert client.get("/v1/constitutions/nope", headers=op).status_code == 404
    missing = client.get("/v1/constitutions/arbiter-default/versions/7", headers=op)
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    assert _put(client, keys, "nope", {"principles": [KIND]}).status_code == 404
