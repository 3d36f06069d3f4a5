"""Every route of the OpenAPI schema, every method, called with no key, bad keys and each role.

`EXPECTED` is the access table of the API: a route missing from it (or listed but gone from
the schema) fails `test_the_table_covers_every_route_of_the_schema`, so it stays complete.
Allowed calls are real, valid requests on real ids and must succeed; refused ones must not
depend on the ids or the body (they are real too, so a 401/403 cannot hide a 404).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.models import Job, JobKind, JobStatus
from tests.conftest import Keys
from tests.service.helpers import import_rows, jsonl, lease, make_project, submit

Route = tuple[str, str]

# Columns: the caller. "none" sends no Authorization header; "bad" is each of BAD_AUTH.
CALLERS = ("none", "bad", "admin", "operator", "annotator")

# fmt: off
EXPECTED: dict[Route, tuple[int, int, int, int, int]] = {
    #                                                   none  bad  admin  oper  annot
    ("GET",    "/healthz"):                             (200, 200, 200,   200,  200),
    ("GET",    "/v1/me"):                               (401, 401, 200,   200,  200),
    ("POST",   "/v1/keys"):                             (401, 401, 201,   403,  403),
    ("GET",    "/v1/keys"):                             (401, 401, 200,   403,  403),
    ("DELETE", "/v1/keys/{key_id}"):                    (401, 401, 200,   403,  403),
    ("POST",   "/v1/projects"):                         (401, 401, 201,   201,  403),
    ("GET",    "/v1/projects"):                         (401, 401, 200,   200,  200),
    ("GET",    "/v1/projects/{project_id}"):            (401, 401, 200,   200,  200),
    ("PATCH",  "/v1/projects/{project_id}"):            (401, 401, 200,   200,  403),
    ("POST",   "/v1/projects/{project_id}/imports"):    (401, 401, 201,   201,  403),
    ("GET",    "/v1/projects/{project_id}/imports/{import_id}"):
                                                        (401, 401, 200,   200,  403),
    ("GET",    "/v1/projects/{project_id}/items"):      (401, 401, 200,   200,  403),
    ("GET",    "/v1/projects/{project_id}/agreement"):  (401, 401, 200,   200,  403),
    ("GET",    "/v1/projects/{project_id}/export"):     (401, 401, 200,   200,  403),
    ("POST",   "/v1/projects/{project_id}/assignments"):
                                                        (401, 401, 200,   200,  200),
    ("GET",    "/v1/projects/{project_id}/progress"):   (401, 401, 200,   200,  200),
    ("GET",    "/v1/assignments/{assignment_id}"):      (401, 401, 200,   200,  200),
    ("POST",   "/v1/assignments/{assignment_id}/labels"):
                                                        (401, 401, 201,   201,  201),
    ("POST",   "/v1/assignments/{assignment_id}/skip"): (401, 401, 200,   200,  200),
    ("POST",   "/v1/jobs"):                             (401, 401, 201,   201,  403),
    ("GET",    "/v1/jobs"):                             (401, 401, 200,   200,  403),
    ("GET",    "/v1/jobs/{job_id}"):                    (401, 401, 200,   200,  403),
    ("POST",   "/v1/jobs/{job_id}/cancel"):             (401, 401, 200,   200,  403),
    ("GET",    "/v1/jobs/{job_id}/artifacts"):          (401, 401, 200,   200,  403),
    ("GET",    "/v1/jobs/{job_id}/revisions"):          (401, 401, 200,   200,  403),
    ("POST",   "/v1/constitutions"):                    (401, 401, 201,   201,  403),
    ("GET",    "/v1/constitutions"):                    (401, 401, 200,   200,  200),
    ("GET",    "/v1/constitutions/{name}"):             (401, 401, 200,   200,  200),
    ("PUT",    "/v1/constitutions/{name}"):             (401, 401, 201,   201,  403),
    ("GET",    "/v1/constitutions/{name}/versions"):    (401, 401, 200,   200,  200),
    ("GET",    "/v1/constitutions/{name}/versions/{version}"):
                                                        (401, 401, 200,   200,  200),
    ("GET",    "/v1/projects/{project_id}/reports/judges"):
                                                        (401, 401, 200,   200,  403),
}
# fmt: on

PAIRS = [{"prompt": f"q{n}", "responses": [f"a{n}", f"b{n}"]} for n in range(8)]
LABEL = {"kind": "pairwise", "choice": "a", "strength": 2}
PRINCIPLE = {"name": "kind", "critique_request": "Is it kind?", "revision_request": "Be kind."}


@dataclass
class World:
    """Real rows the requests point at, made once per test."""

    client: TestClient
    keys: Keys
    project_id: int
    import_id: int
    victim_key_id: int
    revoked_key: str
    train_job_id: int
    made: dict[str, int] = field(default_factory=dict)

    def key_of(self, caller: str) -> str:
        return str(getattr(self.keys, caller))

    def new_job(self) -> int:
        """A fresh queued judge job, started by the operator."""
        response = self.client.post(
            "/v1/jobs",
            json={"kind": "judge", "project_id": self.project_id},
            headers=Keys.auth(self.keys.operator),
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def new_constitution_job(self) -> int:
        """A fresh queued constitution job on the project's first item."""
        response = self.client.post(
            "/v1/jobs",
            json={
                "kind": "constitution",
                "project_id": self.project_id,
                "config": {"responses": {"limit": 1}},
            },
            headers=Keys.auth(self.keys.operator),
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def assignment_of(self, caller: str) -> int:
        """The caller's current lease (a new one once the last was submitted or skipped);
        callers without a key point at the annotator's, a real id."""
        owner = caller if caller in ("admin", "operator", "annotator") else "annotator"
        response = lease(self.client, self.key_of(owner), self.project_id)
        assert response.status_code == 200, response.text
        return int(response.json()["id"])


@pytest.fixture
def world(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session], tmp_path: Path
) -> World:
    # overlap 5: every role can lease every item.
    project_id = make_project(client, keys, "pairwise", overlap=5)
    imported = import_rows(client, keys, project_id, PAIRS)
    assert imported.status_code == 201, imported.text
    admin = Keys.auth(keys.admin)
    victim = client.post("/v1/keys", json={"user": "victim", "role": "annotator"}, headers=admin)
    revoked = client.post("/v1/keys", json={"user": "gone", "role": "operator"}, headers=admin)
    assert victim.status_code == revoked.status_code == 201
    gone = client.delete(f"/v1/keys/{revoked.json()['id']}", headers=admin)
    assert gone.status_code == 200, gone.text
    return World(
        client=client,
        keys=keys,
        project_id=project_id,
        import_id=int(imported.json()["id"]),
        victim_key_id=int(victim.json()["id"]),
        revoked_key=revoked.json()["key"],
        train_job_id=_finished_training_job(session_factory, project_id, tmp_path),
    )


def _finished_training_job(factory: sessionmaker[Session], project_id: int, root: Path) -> int:
    """A succeeded training job with an artifact folder, as a train worker leaves one."""
    folder = root / "job-artifacts"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"job_id": 0}')
    with factory() as session:
        job = Job(
            kind=JobKind.train,
            project_id=project_id,
            status=JobStatus.succeeded,
            config={"method": "dpo"},
            total_units=1,
            metrics={"artifacts_dir": str(folder)},
        )
        session.add(job)
        session.commit()
        return job.id


@dataclass
class Call:
    """One request, before the caller's headers are added."""

    url: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


# How to make a valid request of each route for a caller, on the world's real ids.
REQUESTS: dict[Route, Callable[[World, str], Call]] = {
    ("GET", "/healthz"): lambda w, c: Call("/healthz"),
    ("GET", "/v1/me"): lambda w, c: Call("/v1/me"),
    ("POST", "/v1/keys"): lambda w, c: Call(
        "/v1/keys", json={"user": f"made-by-{c}", "role": "annotator", "description": "matrix"}
    ),
    ("GET", "/v1/keys"): lambda w, c: Call("/v1/keys", params={"limit": 2}),
    ("DELETE", "/v1/keys/{key_id}"): lambda w, c: Call(f"/v1/keys/{w.victim_key_id}"),
    ("POST", "/v1/projects"): lambda w, c: Call(
        "/v1/projects", json={"name": f"new-{c}", "kind": "binary", "overlap": 2}
    ),
    ("GET", "/v1/projects"): lambda w, c: Call("/v1/projects"),
    ("GET", "/v1/projects/{project_id}"): lambda w, c: Call(f"/v1/projects/{w.project_id}"),
    ("PATCH", "/v1/projects/{project_id}"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}", json={"instructions": f"set by {c}"}
    ),
    ("POST", "/v1/projects/{project_id}/imports"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/imports",
        params={"format": "arbiter"},
        content=jsonl([{"prompt": f"from {c}", "responses": ["x", "y"]}]),
        headers={"Content-Type": "application/x-ndjson"},
    ),
    ("GET", "/v1/projects/{project_id}/imports/{import_id}"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/imports/{w.import_id}"
    ),
    ("GET", "/v1/projects/{project_id}/items"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/items", params={"limit": 3}
    ),
    ("GET", "/v1/projects/{project_id}/agreement"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/agreement"
    ),
    ("GET", "/v1/projects/{project_id}/export"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/export", params={"format": "dpo", "file": "jsonl"}
    ),
    ("POST", "/v1/projects/{project_id}/assignments"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/assignments"
    ),
    ("GET", "/v1/projects/{project_id}/progress"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/progress"
    ),
    ("GET", "/v1/assignments/{assignment_id}"): lambda w, c: Call(
        f"/v1/assignments/{w.assignment_of(c)}"
    ),
    ("POST", "/v1/assignments/{assignment_id}/labels"): lambda w, c: Call(
        f"/v1/assignments/{w.assignment_of(c)}/labels", json=LABEL
    ),
    ("POST", "/v1/assignments/{assignment_id}/skip"): lambda w, c: Call(
        f"/v1/assignments/{w.assignment_of(c)}/skip"
    ),
    ("POST", "/v1/jobs"): lambda w, c: Call(
        "/v1/jobs", json={"kind": "judge", "project_id": w.project_id, "config": {"orders": "one"}}
    ),
    ("GET", "/v1/jobs"): lambda w, c: Call("/v1/jobs", params={"project_id": w.project_id}),
    ("GET", "/v1/jobs/{job_id}"): lambda w, c: Call(f"/v1/jobs/{w.new_job()}"),
    ("POST", "/v1/jobs/{job_id}/cancel"): lambda w, c: Call(f"/v1/jobs/{w.new_job()}/cancel"),
    ("GET", "/v1/jobs/{job_id}/artifacts"): lambda w, c: Call(
        f"/v1/jobs/{w.train_job_id}/artifacts"
    ),
    ("GET", "/v1/projects/{project_id}/reports/judges"): lambda w, c: Call(
        f"/v1/projects/{w.project_id}/reports/judges"
    ),
    ("GET", "/v1/jobs/{job_id}/revisions"): lambda w, c: Call(
        f"/v1/jobs/{w.new_constitution_job()}/revisions"
    ),
    ("POST", "/v1/constitutions"): lambda w, c: Call(
        "/v1/constitutions", json={"name": f"made-by-{c}", "principles": [PRINCIPLE]}
    ),
    ("GET", "/v1/constitutions"): lambda w, c: Call("/v1/constitutions"),
    ("GET", "/v1/constitutions/{name}"): lambda w, c: Call("/v1/constitutions/arbiter-default"),
    ("PUT", "/v1/constitutions/{name}"): lambda w, c: Call(
        "/v1/constitutions/arbiter-default",
        json={"description": f"edited by {c}", "principles": [PRINCIPLE]},
    ),
    ("GET", "/v1/constitutions/{name}/versions"): lambda w, c: Call(
        "/v1/constitutions/arbiter-default/versions"
    ),
    ("GET", "/v1/constitutions/{name}/versions/{version}"): lambda w, c: Call(
        "/v1/constitutions/arbiter-default/versions/1"
    ),
}

# Authorization headers that must all be refused like a missing key.
BAD_AUTH: dict[str, Callable[[World], dict[str, str]]] = {
    "unknown key": lambda w: Keys.auth("arb_" + "x" * 43),
    "garbage": lambda w: Keys.auth("not-a-key"),
    "revoked key": lambda w: Keys.auth(w.revoked_key),
    "basic scheme": lambda w: {"Authorization": f"Basic {w.keys.admin}"},
    "no scheme": lambda w: {"Authorization": w.keys.admin},
    "empty bearer": lambda w: {"Authorization": "Bearer "},
}


def _schema_routes(client: TestClient) -> set[Route]:
    paths: dict[str, dict[str, Any]] = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def _walk(world: World, caller: str, who: str, auth: dict[str, str]) -> list[str]:
    """Call every route of the schema as `caller`; the mismatches with the table."""
    problems: list[str] = []
    for route in sorted(_schema_routes(world.client)):
        if route not in EXPECTED:
            problems.append(f"{route[0]} {route[1]}: not in EXPECTED")
            continue
        response = _send(world, route, caller, auth)
        problems += _check(route, who, EXPECTED[route][CALLERS.index(caller)], response)
    return problems


def _send(world: World, route: Route, caller: str, auth: dict[str, str]) -> Any:
    call = REQUESTS[route](world, caller)
    return world.client.request(
        route[0],
        call.url,
        json=call.json,
        content=call.content,
        params=call.params,
        headers={**call.headers, **auth},
    )


def _check(route: Route, who: str, expected: int, response: Any) -> list[str]:
    """Mismatches of one response against the table (status, and the error body shape)."""
    label = f"{route[0]} {route[1]} as {who}"
    if response.status_code != expected:
        return [f"{label}: {response.status_code} != {expected}: {response.text[:300]}"]
    problems = []
    if expected >= 400:
        body = response.json()
        if not {"code", "message", "field"} <= set(body):
            problems.append(f"{label}: error body lacks code/message/field: {body}")
        if expected == 401 and response.headers.get("WWW-Authenticate") != "Bearer":
            problems.append(f"{label}: 401 without 'WWW-Authenticate: Bearer'")
        if expected == 403 and body.get("code") != "forbidden":
            problems.append(f"{label}: 403 code is {body.get('code')!r}")
    return problems


def test_the_table_covers_every_route_of_the_schema(client: TestClient) -> None:
    in_schema = _schema_routes(client)
    missing, gone = sorted(in_schema - set(EXPECTED)), sorted(set(EXPECTED) - in_schema)
    assert not missing, f"routes missing from EXPECTED (add their access rules): {missing}"
    assert not gone, f"routes in EXPECTED but gone from the schema: {gone}"
    assert set(REQUESTS) == set(EXPECTED)


@pytest.mark.parametrize("caller", ["admin", "operator", "annotator"])
def test_each_role_gets_exactly_what_the_table_allows(world: World, caller: str) -> None:
    problems = _walk(world, caller, caller, Keys.auth(world.key_of(caller)))
    assert not problems, "\n".join(problems)


def test_without_a_key_only_healthz_answers(world: World) -> None:
    problems = _walk(world, "none", "no key", {})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("bad", sorted(BAD_AUTH))
def test_a_bad_key_is_refused_everywhere_but_healthz(world: World, bad: str) -> None:
    problems = _walk(world, "bad", bad, BAD_AUTH[bad](world))
    assert not problems, "\n".join(problems)


def test_refusals_come_before_validation_and_lookups(world: World) -> None:
    """No key beats a bad body or an unknown id (401, not 422/404); a role beats them (403)."""
    client = world.client
    no_key = [
        client.post("/v1/projects", json={"kind": "nope"}),
        client.get("/v1/projects/999999"),
        client.post("/v1/assignments/999999/labels", json={"kind": "?"}),
        client.delete("/v1/keys/999999"),
    ]
    assert [r.status_code for r in no_key] == [401] * 4
    annotator = Keys.auth(world.keys.annotator)
    operator = Keys.auth(world.keys.operator)
    refused = [
        client.post("/v1/keys", json={"user": ""}, headers=operator),
        client.delete("/v1/keys/999999", headers=annotator),
        client.get("/v1/projects/999999/items", headers=annotator),
        client.patch("/v1/projects/999999", json={"overlap": 0}, headers=annotator),
    ]
    assert [r.status_code for r in refused] == [403] * 4, [r.text for r in refused]


def test_an_annotator_cannot_see_or_act_on_another_annotators_assignment(
    client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys, "pairwise", overlap=2)
    assert import_rows(client, keys, project_id, PAIRS[:2]).status_code == 201
    mine = lease(client, keys.annotator, project_id).json()["id"]
    other = Keys.auth(keys.annotator2)
    refused = [
        client.get(f"/v1/assignments/{mine}", headers=other),
        submit(client, keys.annotator2, mine, LABEL),
        client.post(f"/v1/assignments/{mine}/skip", headers=other),
    ]
    for response in refused:
        assert response.status_code == 404, response.text
        assert {"code", "message", "field"} <= set(response.json())
    # B's attempts changed nothing: A still holds the lease and can label it.
    own = client.get(f"/v1/assignments/{mine}", headers=Keys.auth(keys.annotator))
    assert own.status_code == 200
    assert own.json()["status"] == "leased"
    assert submit(client, keys.annotator, mine, LABEL).status_code == 201
    # B's own lease is a different assignment, and A cannot see that one either.
    theirs = lease(client, keys.annotator2, project_id).json()["id"]
    assert theirs != mine
    hidden = client.get(f"/v1/assignments/{theirs}", headers=Keys.auth(keys.annotator))
    assert hidden.status_code == 404
