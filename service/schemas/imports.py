"""Import reports."""

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ImportFormat(StrEnum):
    """Accepted JSONL line formats."""

    arbiter = "arbiter"
    trl_preference = "trl-preference"
    trl_kto = "trl-kto"
    hh_rlhf = "hh-rlhf"


class ImportError_(BaseModel):
    """One rejected line."""

    line: int = Field(description="1-based line number in the uploaded file.")
    field: str | None
    message: str


class ImportReport(BaseModel):
    """What an import did: lines read, what went in, and each rejected line."""

    id: int
    project_id: int
    format: ImportFormat
    status: str = Field(
        description="completed | partial (bad lines skipped, see errors) | failed (nothing "
        "written: a rejected line under on_error=abort, or a database error)"
    )
    lines_total: int
    lines_imported: int = Field(description="Lines that became new items.")
    duplicates_skipped: int = Field(
        description="Valid lines skipped because their external_id is already in the project."
    )
    items_created: int
    labels_created: int
    errors: list[dict[str, Any]]
    created_at: dt.datetime
    finished_at: dt.datetime | None
