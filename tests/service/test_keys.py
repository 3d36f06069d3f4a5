"""Admins create and revoke keys; keys are stored hashed; a revoked key stops working."""

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.domain.auth import hash_key
from service.models import ApiKey
from tests.conftest import Keys


def test_a_new_key_works_and_only_its_hash_is_stored(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    created = client.post(
        "/v1/keys", json={"user": "zoe", "role": "annotator"}, headers=Keys.auth(keys.admin)
    ).json()
    me = client.get("/v1/me", headers=Keys.auth(created["key"])).json()
    assert (me["name"], me["role"]) == ("zoe", "annotator")
    with session_factory() as s:
        stored = s.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
    assert stored is not None
    assert stored.key_hash == hash_key(created["key"])
    assert created["key"] not in (stored.key_hash, stored.prefix)


def test_a_revoked_key_is_refused(client: TestClient, keys: Keys) -> None:
    created = client.post(
        "/v1/keys", json={"user": "zoe", "role": "annotator"}, headers=Keys.auth(keys.admin)
    ).json()
    client.delete(f"/v1/keys/{created['id']}", headers=Keys.auth(keys.admin))
    refused = client.get("/v1/me", headers=Keys.auth(created["key"]))
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")


def test_a_second_key_for_a_user_must_keep_the_users_role(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/keys", json={"user": "annotator", "role": "admin"}, headers=Keys.auth(keys.admin)
    )
    assert (response.status_code, response.json()["field"]) == (409, "role")


def test_key_listing_never_shows_secrets(client: TestClient, keys: Keys) -> None:
    listed = client.get("/v1/keys", headers=Keys.auth(keys.admin)).json()["data"]
    assert len(listed) == 5
    assert all("key" not in k for k in listed)
