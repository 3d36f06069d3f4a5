"""Shapes shared by every resource: errors and cursor pages."""

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

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


def reject_nul(value: Any) -> Any:
    """Refuse strings holding NUL characters (PostgreSQL text cannot store them)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for entry in value:
            reject_nul(entry)
    return value


NoNulStr = Annotated[str, AfterValidator(reject_nul)]


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields and NUL characters are rejected."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return reject_nul(value)
