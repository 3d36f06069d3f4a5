"""Constitutions (versioned principles) and the revision chains constitution jobs store."""

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from service.schemas.common import NoNulStr, RequestBody

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Request = Annotated[NoNulStr, Field(min_length=1, max_length=10_000)]


class PrincipleIn(RequestBody):
    """A principle: how to critique a response against it, and how to revise it."""

    name: Name
    critique_request: Request = Field(
        description="Asks the model to critique the assistant's last reply against the principle."
    )
    revision_request: Request = Field(
        description="Asks the model to rewrite the reply so that it addresses the critique."
    )


class ConstitutionContent(RequestBody):
    """What a version holds: a description and its principles (names unique)."""

    description: NoNulStr = Field(default="", max_length=10_000)
    principles: list[PrincipleIn] = Field(min_length=1, max_length=100)

    @field_validator("principles")
    @classmethod
    def _unique_names(cls, principles: list[PrincipleIn]) -> list[PrincipleIn]:
        names = [p.name for p in principles]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"principle names must be unique; {duplicate!r} is repeated")
        return principles


class ConstitutionIn(ConstitutionContent):
    """A new constitution (version 1)."""

    name: Name


class PrincipleOut(BaseModel):
    """A principle of a constitution version."""

    id: int
    name: str
    critique_request: str
    revision_request: str


class ConstitutionOut(BaseModel):
    """One version of a constitution."""

    id: int = Field(description="The version's own id.")
    name: str
    version: int
    description: str
    principles: list[PrincipleOut]
    created_at: dt.datetime


class StepOut(BaseModel):
    """One critique -> revision round of a chain."""

    round: int
    principle: str
    critique: str
    critique_outcome: str
    critique_tokens: int
    revision: str | None
    revision_outcome: str | None = Field(
        description="ok, or why the revision was not kept: empty, looping, too_long, unchanged; "
        "null when the critique already failed."
    )
    revision_tokens: int


class RevisionChainOut(BaseModel):
    """The rounds a constitution job ran on one response, and what came of them."""

    id: int
    job_id: int
    response_id: int
    original: str
    status: str = Field(
        description="revised, unrevised (no usable revision) or rejected by the judge"
    )
    final_revision: str | None
    final_response_id: int | None
    pair_item_id: int | None
    p_confirmed: float | None = Field(description="The judge's P(revision better), if asked.")
    constitution: str = Field(description="name@version")
    model: str
    backend: str
    generation: dict[str, Any]
    steps: list[StepOut]
    created_at: dt.datetime
