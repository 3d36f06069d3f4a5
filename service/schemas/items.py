"""Items as operators and annotators see them."""

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.models.projects import FeedbackKind


class ResponseOut(BaseModel):
    """A response at its position in an item (position 0 is A)."""

    id: int
    position: int
    text: str
    source: str


class LabelOut(BaseModel):
    """A human label as stored."""

    id: int
    item_id: int
    assignment_id: int | None
    annotator: str
    kind: FeedbackKind
    value: dict[str, Any]
    rationale: str | None
    origin: Literal["annotation", "import"]
    created_at: dt.datetime


class ItemOut(BaseModel):
    """An item with its prompt, responses in order and (for operators) its labels."""

    id: int
    project_id: int
    kind: FeedbackKind
    prompt: str
    responses: list[ResponseOut]
    external_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    label_count: int
    is_complete: bool
    created_at: dt.datetime
    labels: list[LabelOut] = Field(default_factory=list)


class AssignmentOut(BaseModel):
    """An item leased to the caller until `lease_expires_at`."""

    id: int
    project_id: int
    status: Literal["leased", "submitted", "skipped"]
    leased_at: dt.datetime
    lease_expires_at: dt.datetime
    instructions: str
    item: ItemOut


class Progress(BaseModel):
    """The caller's progress in a project."""

    done: int = Field(description="Items the caller has labeled.")
    remaining: int = Field(description="Items the caller could still be given.")
