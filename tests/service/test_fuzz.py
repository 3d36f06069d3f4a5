"""Schemathesis over the whole OpenAPI schema, in-process, as an admin: no request may get a 5xx.

Every operation gets its own seeded database (a project of each kind, imports, labels, leases:
ids 1..~12 exist) and a few dozen generated requests: schemathesis' coverage phase (boundary and
missing/invalid values, other methods) and its fuzzing phase, positive and negative, seeded
(`derandomize=True`). A 5xx fails with a curl reproducer and the traceback the app logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.config import Settings
from service.domain.auth import create_key, hash_key
from service.models import ApiKey, Role
from tests.conftest import Keys
from tests.service.helpers import import_rows, lease, make_project, submit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# The schema of the app as built; requests go to each test's own app on its own database.
# (Not schemathesis.pytest.from_fixture: in schemathesis 4.32.5 it fails under pytest 9.2 with
# "'Function' object has no attribute '_nodeid'".)
schema = schemathesis.openapi.from_dict(create_app(Settings(database_url="sqlite://")).openapi())

# JSONL bodies for imports: whole files in each accepted format (a line's response count picks
# the project kind it fits), and files of near misses and junk.
_text = st.text(max_size=20)
_prompt = st.text(min_size=1, max_size=20)
_hh = _text.map(lambda t: f"\n\nHuman: hi\n\nAssistant: {t}")
_responses = st.lists(_text | st.fixed_dictionaries({"text": _text, "source": _text}), max_size=4)
_FILES = [
    st.sampled_from([2, 3, 1]).flatmap(  # 2 first: shrinks towards pairwise project 1
        lambda n: st.lists(
            st.fixed_dictionaries(
                {"prompt": _prompt, "responses": st.lists(_text, min_size=n, max_size=n)},
                optional={"id": _text | st.integers(), "tags": st.lists(_text, max_size=2)},
            ),
            min_size=1,
            max_size=4,
        )
    ),
    st.lists(
        st.fixed_dictionaries({"prompt": _prompt, "chosen": _text, "rejected": _text}),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.fixed_dictionaries({"prompt": _prompt, "completion": _text, "label": st.booleans()}),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.fixed_dictionaries({"chosen": _hh, "rejected": _hh}), min_size=1, max_size=4),
]
_junk_line = st.one_of(
    st.fixed_dictionaries({"prompt": _text | st.integers(), "responses": _responses | _text}),
    st.fixed_dictionaries({"prompt": _text, "completion": _text, "label": _text | st.none()}),
    st.fixed_dictionaries({"chosen": _text | st.lists(_text), "rejected": _hh}),
    st.dictionaries(_text, _text | st.integers() | st.none(), max_size=3),
    st.none() | st.integers() | _text,
)
_jsonl = st.one_of(
    st.one_of(_FILES).map(lambda rows: b"".join(orjson.dumps(r) + b"\n" for r in rows)),
    st.lists(_junk_line.map(orjson.dumps) | st.binary(max_size=20), max_size=5).map(b"\n".join),
)
schemathesis.openapi.media_type("application/x-ndjson", _jsonl)


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any]]:
    """Ids are small: aim valid ids at the seeded rows as often as anywhere else."""
    steered = {
        name: st.integers(1, 12) | st.just(value)
        if type(value) is int and 1 <= value <= 2**31 - 1
        else st.just(value)
        for name, value in (path_parameters or {}).items()
    }
    return st.fixed_dictionaries(steered)


def answer_errors_without_raising(app: ASGIApp) -> ASGIApp:
    """Starlette re-raises an unhandled error after sending the 500; keep the 500 as the answer
    (as a server would) so the check sees it. The traceback is logged by service.api.errors."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except Exception:
            if not started:
                raise

    return wrapped


@dataclass
class Target:
    """The app under test and the admin key requests are sent with."""

    http: ASGIClient
    session_factory: sessionmaker[Session]
    admin_key: str
    admin_key_id: int
    log: list[logging.LogRecord]

    def remint_if_revoked(self, case: schemathesis.Case, response: Any) -> None:
        """DELETE /v1/keys/{id} may revoke the admin's own key: give the admin a new one."""
        if case.method.upper() != "DELETE" or response.status_code != 200:
            return
        if response.json().get("id") == self.admin_key_id:
            with self.session_factory() as session:
                key, _, secret = create_key(session, "admin", Role.admin)
            self.admin_key, self.admin_key_id = secret, key.id


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _seed(client: TestClient, keys: Keys) -> None:
    """A project of each kind with imported items, labels and leases, so small ids exist."""
    pairwise = make_project(client, keys, "pairwise", overlap=2)
    listwise = make_project(client, keys, "listwise", overlap=2)
    binary = make_project(client, keys, "binary", overlap=2)
    pairs = [{"prompt": f"q{n}", "responses": [f"a{n}", f"b{n}"], "tags": ["t"]} for n in range(4)]
    lists = [
        {"prompt": f"l{n}", "responses": ["x", "y", {"text": "z", "source": "m"}]} for n in range(3)
    ]
    prefs = [{"prompt": f"p{n}", "chosen": "good", "rejected": "bad"} for n in range(3)]
    kto = [{"prompt": f"k{n}", "completion": "c", "label": n % 2 == 0} for n in range(3)]
    for project, rows, fmt in [
        (pairwise, pairs, "arbiter"),
        (listwise, lists, "arbiter"),
        (binary, kto, "trl-kto"),
        (pairwise, prefs, "trl-preference"),
    ]:
        assert import_rows(client, keys, project, rows, fmt).status_code == 201
    # The admin (whose assignments the fuzzer can reach) and annotators lease and label.
    for key in (keys.admin, keys.annotator, keys.annotator2):
        for project, body in [
            (pairwise, {"kind": "pairwise", "choice": "a", "strength": 2}),
            (binary, {"kind": "binary", "rating": "up"}),
        ]:
            got = lease(client, key, project)
            assert got.status_code == 200, got.text
            assert submit(client, key, got.json()["id"], body).status_code == 201
        listed = lease(client, key, listwise).json()
        ranking = [r["id"] for r in listed["item"]["responses"]]
        ranked = submit(client, key, listed["id"], {"kind": "listwise", "ranking": ranking})
        assert ranked.status_code == 201, ranked.text
        assert lease(client, key, pairwise).status_code == 200  # left leased


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Fuzz on SQLite and on PostgreSQL (NUL bytes, query shapes and types differ)."""
    return any_db_url


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Keys cached, as served: submits the quick path can answer reach it."""
    return Settings(database_url=db_url, auth_cache_seconds=60)


@pytest.fixture
def target(
    client: TestClient, keys: Keys, session_factory: sessionmaker[Session]
) -> Iterator[Target]:
    _seed(client, keys)
    with session_factory() as session:
        admin_key_id = session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == hash_key(keys.admin))
        )
    assert admin_key_id is not None
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    logger = logging.getLogger("service.api.errors")
    logger.addHandler(handler)
    try:
        yield Target(
            # Not entered: the app's lifespan already ran in `client`.
            http=ASGIClient(answer_errors_without_raising(client.app)),  # type: ignore[arg-type]
            session_factory=session_factory,
            admin_key=keys.admin,
            admin_key_id=admin_key_id,
            log=records,
        )
    finally:
        logger.removeHandler(handler)


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    # One seeded database per operation, shared by its examples on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, target: Target) -> None:
    seen, key = len(target.log), target.admin_key
    response = case.call(base_url="http://testserver", session=target.http, headers=Keys.auth(key))
    target.remint_if_revoked(case, response)
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException as exc:
        for record in target.log[seen:]:
            exc.add_note(logging.Formatter().format(record))
        raise
    # Every request carries the admin key except the coverage phase's "missing Authorization".
    if response.request.headers.get("Authorization") == f"Bearer {key}":
        assert response.status_code != 401, "the admin key must get past authentication"
