"""API keys and identities."""

import datetime as dt

from pydantic import BaseModel, Field

from service.models.users import Role
from service.schemas.common import RequestBody


class KeyCreate(RequestBody):
    """Create a key for a user (created on first use of the name) with a role."""

    user: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    role: Role
    description: str | None = Field(default=None, max_length=500)


class KeyOut(BaseModel):
    """A key as listed: never the secret itself, only its prefix."""

    id: int
    user: str
    role: Role
    prefix: str
    description: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyCreated(KeyOut):
    """A freshly created key: the only time the secret is shown."""

    key: str = Field(description="The secret; store it now, it is not shown again.")


class Me(BaseModel):
    """Who the caller is."""

    id: int
    name: str
    role: Role
