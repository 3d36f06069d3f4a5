"""Dataset exports for TRL: DPO/reward pairs, KTO rows, SFT rows; JSONL or Parquet."""

import datetime as dt
import os
import tempfile
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from service.api.deps import DbDep, RequireOperator
from service.api.errors import ERROR_RESPONSES
from service.api.routes.projects import ProjectId
from service.domain.exports import (
    Aggregate,
    Constitutional,
    ExportFormat,
    ExportOptions,
    FileFormat,
    Source,
    write_export,
)
from service.domain.projects import get_project
from service.errors import Invalid
from service.schemas.common import NoNulStr

router = APIRouter(prefix="/v1/projects", tags=["exports"], responses=ERROR_RESPONSES)

MEDIA = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _write(
    session: Session, project_id: int, opts: ExportOptions, file: FileFormat
) -> FileResponse:
    project = get_project(session, project_id)
    fd, path = tempfile.mkstemp(suffix=f".{file}")
    try:
        with os.fdopen(fd, "wb") as out:
            summary = write_export(session, project, opts, out, file)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=MEDIA[file],
        filename=f"{project.name}-{opts.format}.{file}",
        headers={
            "X-Arbiter-Rows": str(summary.rows),
            "X-Arbiter-Items": str(summary.items),
            "X-Arbiter-Ties-Skipped": str(summary.ties_skipped),
            "X-Arbiter-Below-Agreement-Skipped": str(summary.below_agreement_skipped),
        },
        background=BackgroundTask(os.unlink, path),
    )


@router.get(
    "/{project_id}/export",
    response_class=FileResponse,
    responses={200: {"description": "The dataset file; counts in X-Arbiter-* headers"}},
)
async def export(
    project_id: ProjectId,
    _: RequireOperator,
    db: DbDep,
    format: ExportFormat = "dpo",
    file: FileFormat = "jsonl",
    source: Annotated[
        Source,
        Query(description="human, ai, or both (an item's human labels stand; AI fills in)."),
    ] = "human",
    aggregate: Annotated[
        Aggregate, Query(description="majority: one row per pair; none: one row per vote")
    ] = "majority",
    include_imported: Annotated[
        bool,
        Query(
            description="Use the preferences that came with imported datasets, for items no "
            "annotator has labeled yet (annotators' labels replace them)."
        ),
    ] = True,
    min_agreement: Annotated[float | None, Query(ge=0, le=1)] = None,
    min_votes: Annotated[int, Query(ge=1, le=1000)] = 1,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    tag: Annotated[NoNulStr | None, Query(max_length=200)] = None,
    min_confidence: Annotated[
        float | None,
        Query(ge=0, le=1, description="AI labels: at least this confidence (|2P - 1|)."),
    ] = None,
    position_consistent_only: Annotated[
        bool, Query(description="AI labels: only those whose two orders agree.")
    ] = False,
    judge_job_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="AI labels: only this judge job's.")
    ] = None,
    constitutional: Annotated[
        Constitutional,
        Query(
            description="Constitutional pairs (revision over original, from constitution "
            "jobs): include, exclude, or only them."
        ),
    ] = "include",
) -> FileResponse:
    """Export labels as rows TRL's trainers and `datasets` load as they are."""
    opts = ExportOptions(
        format=format,
        source=source,
        aggregate=aggregate,
        include_imported=include_imported,
        min_agreement=min_agreement,
        min_votes=min_votes,
        created_after=_aware(created_after, "created_after"),
        created_before=_aware(created_before, "created_before"),
        tag=tag,
        min_confidence=min_confidence,
        position_consistent_only=position_consistent_only,
        judge_job_id=judge_job_id,
        constitutional=constitutional,
    )
    return await db.run(_write, project_id, opts, file)


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """Timestamps without a zone are taken as UTC; they must exist in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise Invalid(f"{field} is out of range", field) from exc
