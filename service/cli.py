"""The `arbiter` command: serve, db, keys, import, export, and the commands plugins add.

The service knows nothing of workers or the trainer; they add their commands through entry
points: group `arbiter.workers` (each a `arbiter worker NAME` command) and `arbiter.commands`
(each a top-level command), both declared in pyproject.toml.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import get_settings
from service.db import make_engine, make_session_factory, session_scope
from service.models import Role, User

app = typer.Typer(
    help="Arbiter: preference-data annotation and RLAIF labeling.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
worker_app = typer.Typer(
    help="Workers that claim jobs' work from the database.", no_args_is_help=True
)
app.add_typer(worker_app, name="worker")


def _add_plugin_commands() -> None:
    for entry in entry_points(group="arbiter.workers"):
        worker_app.command(entry.name)(entry.load())
    for entry in entry_points(group="arbiter.commands"):
        app.command(entry.name)(entry.load())


def _factory() -> sessionmaker[Session]:
    settings = get_settings()
    return make_session_factory(
        make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from service.migrate import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [ARBITER_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [ARBITER_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes [ARBITER_WORKERS]")] = None,
) -> None:
    """Migrate the database, create the first admin key if none exists, and serve the API."""
    import uvicorn

    from service.domain.auth import bootstrap_admin
    from service.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    with session_scope(_factory()) as session:
        key = bootstrap_admin(session, settings.bootstrap_admin_key)
    if key is not None:
        typer.echo(f"\nFirst start: created user 'admin'. Admin API key (shown once):\n\n  {key}\n")
    workers = workers or settings.workers
    # The app reads its settings from the environment: tell it how many processes serve.
    os.environ["ARBITER_WORKERS"] = str(workers)
    get_settings.cache_clear()
    uvicorn.run(
        "service.app:create_served_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User name (created on first use)")],
    role: Annotated[Role, typer.Option(help="admin | operator | annotator")],
    description: str | None = None,
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    from service.domain.auth import create_key

    with session_scope(_factory()) as session:
        _, _, secret = create_key(session, user, role, description)
    typer.echo(secret)


def _user_id(session: Session, name: str) -> int:
    user_id = session.scalar(select(User.id).where(User.name == name))
    if user_id is None:
        raise typer.BadParameter(f"no user named {name!r}", param_hint="--as-user")
    return int(user_id)


@app.command("import")
def import_(
    project_id: int,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    format: Annotated[
        str, typer.Option(help="arbiter | trl-preference | trl-kto | hh-rlhf")
    ] = "arbiter",
    on_error: Annotated[str, typer.Option(help="abort | skip")] = "abort",
    labels: Annotated[bool, typer.Option(help="Keep the dataset's own preferences")] = True,
    as_user: Annotated[str, typer.Option(help="Recorded as the importer")] = "admin",
) -> None:
    """Import a JSONL file into a project, straight into the database."""
    from service.domain.imports import ImportOptions, run_import
    from service.errors import AppError

    settings = get_settings()
    if on_error not in ("abort", "skip"):
        raise typer.BadParameter("abort or skip", param_hint="--on-error")
    opts = ImportOptions(
        format=format,
        on_error=on_error,  # type: ignore[arg-type]
        with_labels=labels,
        batch_size=settings.import_batch_size,
        max_errors=settings.max_import_errors,
    )
    with session_scope(_factory()) as session, path.open("rb") as stream:
        try:
            report = run_import(session, project_id, stream, opts, _user_id(session, as_user))
        except AppError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            for err in getattr(getattr(exc, "report", None), "errors", []):
                typer.echo(f"  line {err['line']}: {err['message']}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"import {report.id}: {report.status}; {report.lines_imported}/{report.lines_total} lines, "
        f"{report.items_created} items, {report.labels_created} labels, {len(report.errors)} errors"
    )


@app.command()
def export(
    project_id: int,
    out: Annotated[Path, typer.Option(help="File to write")],
    format: Annotated[str, typer.Option(help="dpo | kto | sft")] = "dpo",
    file: Annotated[str, typer.Option(help="jsonl | parquet")] = "jsonl",
    min_agreement: float | None = None,
    include_imported: bool = True,
) -> None:
    """Export a project's labels as a TRL-ready dataset file."""
    from service.domain.exports import ExportOptions, write_export
    from service.domain.projects import get_project
    from service.errors import AppError

    if format not in ("dpo", "kto", "sft"):
        raise typer.BadParameter("dpo, kto or sft", param_hint="--format")
    if file not in ("jsonl", "parquet"):
        raise typer.BadParameter("jsonl or parquet", param_hint="--file")

    opts = ExportOptions(
        format=format,  # type: ignore[arg-type]
        min_agreement=min_agreement,
        include_imported=include_imported,
    )
    with session_scope(_factory()) as session, out.open("wb") as stream:
        try:
            summary = write_export(session, get_project(session, project_id), opts, stream, file)  # type: ignore[arg-type]
        except AppError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"{summary.rows} rows from {summary.items} items -> {out} "
        f"({summary.ties_skipped} ties skipped, {summary.below_agreement_skipped} below agreement)"
    )


def main() -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _add_plugin_commands()
    app()


if __name__ == "__main__":
    main()
