"""Training-job tests run on SQLite and on PostgreSQL."""

import pytest


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Every test here that touches the database runs once per database."""
    return any_db_url
