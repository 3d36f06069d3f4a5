"""Small request helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.conftest import Keys


def make_project(client: TestClient, keys: Keys, kind: str = "pairwise", **settings: Any) -> int:
    """Create a project as the operator and return its id."""
    body = {"name": f"p-{kind}-{len(settings)}-{id(settings)}", "kind": kind, **settings}
    response = client.post("/v1/projects", json=body, headers=Keys.auth(keys.operator))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def jsonl(rows: list[Any]) -> bytes:
    """Rows as a JSONL body."""
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def import_rows(
    client: TestClient,
    keys: Keys,
    project_id: int,
    rows: list[Any],
    fmt: str = "arbiter",
    **params: Any,
) -> Any:
    """POST rows as JSONL to the project's imports; returns the response."""
    return client.post(
        f"/v1/projects/{project_id}/imports",
        params={"format": fmt, **params},
        content=jsonl(rows),
        headers={**Keys.auth(keys.operator), "Content-Type": "application/x-ndjson"},
    )


def lease(client: TestClient, key: str, project_id: int) -> Any:
    """Lease the next assignment as the key's owner; returns the response."""
    return client.post(f"/v1/projects/{project_id}/assignments", headers=Keys.auth(key))


def submit(
    client: TestClient, key: str, assignment_id: int, body: dict[str, Any], **headers: str
) -> Any:
    """Submit a label; returns the response."""
    return client.post(
        f"/v1/assignments/{assignment_id}/labels", json=body, headers={**Keys.auth(key), **headers}
    )
