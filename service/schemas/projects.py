"""Projects and their settings."""

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from service.models.projects import FeedbackKind
from service.schemas.common import RequestBody


class ProjectCreate(RequestBody):
    """A new labeling project."""

    name: str = Field(min_length=1, max_length=200)
    kind: FeedbackKind
    overlap: int = Field(default=1, ge=1, le=100, description="Distinct annotators per item.")
    lease_seconds: int | None = Field(
        default=None, ge=5, le=7 * 24 * 3600, description="How long an assignment is held."
    )
    instructions: str = Field(
        default="", max_length=100_000, description="Rubric shown to annotators."
    )


class ProjectUpdate(RequestBody):
    """Settings an operator may change after creation (the feedback kind is fixed)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    overlap: int | None = Field(default=None, ge=1, le=100)
    lease_seconds: int | None = Field(default=None, ge=5, le=7 * 24 * 3600)
    instructions: str | None = Field(default=None, max_length=100_000)


class ProjectOut(BaseModel):
    """A project with its settings and progress."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: FeedbackKind
    overlap: int
    lease_seconds: int
    instructions: str
    created_at: dt.datetime
    updated_at: dt.datetime
    items_total: int = 0
    items_complete: int = 0
    labels_total: int = 0
