"""Bulk imports of prompts, responses and items from JSONL."""

import shutil
import tempfile
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import DbDep, RequireOperator, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.api.routes.projects import ProjectId
from service.domain.imports import ImportOptions, run_import
from service.errors import Invalid, NotFound
from service.models import Import
from service.schemas.common import ErrorBody
from service.schemas.imports import ImportFormat, ImportReport

router = APIRouter(prefix="/v1/projects", tags=["imports"], responses=ERROR_RESPONSES)

_SPOOL_BYTES = 8 * 1024 * 1024
_BODY_DOC = {
    "requestBody": {
        "description": "JSONL, one record per line; raw, or as the `file` part of a form.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def _spool(request: Request) -> IO[bytes]:
    """The uploaded JSONL in a temporary file, read chunk by chunk (never whole in memory)."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (closed by caller)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form() as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise Invalid("send the JSONL as the form part named 'file'", "file")
                await run_in_threadpool(shutil.copyfileobj, upload.file, spool)
        else:
            async for chunk in request.stream():
                spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@router.post(
    "/{project_id}/imports",
    status_code=201,
    openapi_extra=_BODY_DOC,
    responses={422: {"model": ErrorBody, "description": "Rejected lines; nothing written"}},
)
async def create_import(
    project_id: ProjectId,
    request: Request,
    user: RequireOperator,
    db: DbDep,
    settings: SettingsDep,
    format: ImportFormat = ImportFormat.arbiter,
    on_error: Literal["abort", "skip"] = "abort",
    labels: Annotated[
        bool, Query(description="Keep the dataset's own preferences as labels.")
    ] = True,
) -> ImportReport:
    """Import JSONL (arbiter, trl-preference, trl-kto or hh-rlhf) and report what went in."""
    opts = ImportOptions(
        format=format.value,
        on_error=on_error,
        with_labels=labels,
        batch_size=settings.import_batch_size,
        max_errors=settings.max_import_errors,
    )
    stream = await _spool(request)
    try:
        return await db.run(_import, project_id, stream, opts, user.user_id)
    finally:
        stream.close()


def _import(
    session: Session, project_id: int, stream: IO[bytes], opts: ImportOptions, user_id: int
) -> ImportReport:
    report = run_import(session, project_id, stream, opts, user_id)
    return ImportReport.model_validate(report, from_attributes=True)


def _report(session: Session, project_id: int, import_id: int) -> ImportReport:
    report = session.get(Import, import_id)
    if report is None or report.project_id != project_id:
        raise NotFound(f"import {import_id} not found in project {project_id}", "import_id")
    return ImportReport.model_validate(report, from_attributes=True)


@router.get("/{project_id}/imports/{import_id}")
async def get_import(
    project_id: ProjectId,
    import_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    _: RequireOperator,
    db: DbDep,
) -> ImportReport:
    """The report of an earlier import."""
    return await db.run(_report, project_id, import_id)
