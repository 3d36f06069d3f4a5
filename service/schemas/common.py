"""Shapes shared by every resource: errors and cursor pages."""

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message, and the offending field if any."""

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(default=None, description="The request field at fault, if one.")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` as `?cursor=` to get the next."""

    data: list[T]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last.")
