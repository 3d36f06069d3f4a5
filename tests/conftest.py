"""Shared fixtures: a migrated database per test (SQLite file copy or PostgreSQL template),
the app on it, and an API key per role."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.domain.auth import create_key
from service.migrate import upgrade
from service.models import Role
from tests.support.tiny_models import (
    build_causal_lm,
    build_reply_lm,
    build_sequence_classifier,
    build_tokenizer,
)

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_ADMIN_DSN = os.environ.get("ARBITER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# One template per test run, so two runs on one machine (a developer's and CI's) never share it.
PG_TEMPLATE = f"arbiter_test_template_{uuid.uuid4().hex[:8]}"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HH_SAMPLE = SHARED_DATA / "hh-rlhf-harmless-sample.jsonl"


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{dbname}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session, used as a template."""
    _pg_admin(f"CREATE DATABASE {PG_TEMPLATE}")
    upgrade(_pg_url(PG_TEMPLATE))
    yield PG_TEMPLATE
    _pg_admin(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")


def fresh_sqlite(template: Path, directory: Path) -> str:
    """A copy of the migrated template in `directory`."""
    path = directory / f"arbiter-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database cloned from the migrated template, dropped afterwards."""
    name = f"arbiter_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield _pg_url(name)
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite file."""
    return fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The database API tests run on (SQLite unless a test asks for `any_db_url`)."""
    return sqlite_url


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings for a test app on `db_url`."""
    return Settings(database_url=db_url, auth_cache_seconds=0, import_batch_size=7)


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database, for setting up and checking rows."""
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class Keys:
    """One API key per role, and helpers to send it."""

    admin: str
    operator: str
    annotator: str
    annotator2: str
    annotator3: str

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        """The Authorization header for a key."""
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(session_factory: sessionmaker[Session]) -> Keys:
    """Keys for an admin, an operator and three annotators."""
    made = {}
    for name, role in [
        ("admin", Role.admin),
        ("operator", Role.operator),
        ("annotator", Role.annotator),
        ("annotator2", Role.annotator),
        ("annotator3", Role.annotator),
    ]:
        with session_factory() as session:
            made[name] = create_key(session, name, role)[2]
    return Keys(**made)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the app on the test database (lifespan run)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class TinyModels:
    """Paths of the tiny models built once per session."""

    causal_lm: Path  # random weights
    classifier: Path  # random weights, one-output sequence classifier
    reply_lm: Path  # trained to answer every chat turn with tiny_models.REPLY, then end it


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Build the tiny tokenizer and models once per session."""
    root = tmp_path_factory.mktemp("tiny_models")
    tokenizer = build_tokenizer(root / "tokenizer")
    return TinyModels(
        causal_lm=build_causal_lm(root / "causal_lm", tokenizer),
        classifier=build_sequence_classifier(root / "classifier", tokenizer),
        reply_lm=build_reply_lm(root / "reply_lm", tokenizer),
    )
