"""The schema comes from Alembic migrations, and they match the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import service.models  # noqa: F401
from service.db import Base, make_engine
from service.migrate import alembic_config


def test_migrated_database_matches_models(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(any_db_url: str) -> None:
    from alembic import command

    cfg = alembic_config(any_db_url)
    command.downgrade(cfg, "base")
    engine = make_engine(any_db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(cfg, "head")
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()
