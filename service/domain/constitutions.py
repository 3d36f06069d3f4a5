"""Constitutions: create, new versions on edit, read a version, list.

A version is never changed once written: critiques, revisions and labels name the version
they used, so editing a constitution writes the next version. Arbiter's default constitution
(`arbiter-default`) is written by the migrations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from service.db import begin_write
from service.errors import Conflict, NotFound
from service.models import Constitution, Principle

DEFAULT_CONSTITUTION = "arbiter-default"


@dataclass(frozen=True)
class PrincipleText:
    """A principle as an operator writes it."""

    name: str
    critique_request: str
    revision_request: str


def _write_version(
    session: Session,
    name: str,
    version: int,
    description: str,
    principles: list[PrincipleText],
    created_by_id: int | None,
) -> Constitution:
    constitution = Constitution(
        name=name,
        version=version,
        description=description,
        created_by_id=created_by_id,
        principles=[
            Principle(
                position=n,
                name=p.name,
                critique_request=p.critique_request,
                revision_request=p.revision_request,
            )
            for n, p in enumerate(principles)
        ],
    )
    session.add(constitution)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer took this version number
        session.rollback()
        raise Conflict(
            f"constitution {name!r} version {version} was written meanwhile; retry", "name"
        ) from exc
    return constitution


def create_constitution(
    session: Session,
    *,
    name: str,
    description: str,
    principles: list[PrincipleText],
    created_by_id: int | None,
) -> Constitution:
    """Write version 1 of a new constitution; an existing name is a conflict."""
    begin_write(session)
    if _latest_version(session, name) is not None:
        raise Conflict(
            f"constitution {name!r} exists; PUT /v1/constitutions/{name} writes a new version",
            "name",
        )
    constitution = _write_version(session, name, 1, description, principles, created_by_id)
    session.commit()
    return constitution


def update_constitution(
    session: Session,
    name: str,
    *,
    description: str,
    principles: list[PrincipleText],
    created_by_id: int | None,
) -> tuple[Constitution, bool]:
    """Write the next version of a constitution; returns it and whether it is new.

    Content identical to the latest version writes nothing and returns that version.
    """
    begin_write(session)
    latest = get_constitution(session, name)
    same = latest.description == description and [
        PrincipleText(p.name, p.critique_request, p.revision_request) for p in latest.principles
    ] == list(principles)
    if same:
        session.rollback()
        return latest, False
    constitution = _write_version(
        session, name, latest.version + 1, description, principles, created_by_id
    )
    session.commit()
    return constitution, True


def _latest_version(session: Session, name: str) -> int | None:
    return session.scalar(select(func.max(Constitution.version)).where(Constitution.name == name))


def get_constitution(session: Session, name: str, version: int | None = None) -> Constitution:
    """A version of a constitution (the latest by default), with its principles."""
    if version is None:
        version = _latest_version(session, name)
        if version is None:
            raise NotFound(f"constitution {name!r} not found", "name")
    constitution = session.scalar(
        select(Constitution)
        .where(Constitution.name == name, Constitution.version == version)
        .options(selectinload(Constitution.principles))
    )
    if constitution is None:
        if _latest_version(session, name) is None:
            raise NotFound(f"constitution {name!r} not found", "name")
        raise NotFound(f"constitution {name!r} has no version {version}", "version")
    return constitution


def get_constitution_by_id(session: Session, constitution_id: int) -> Constitution:
    """A constitution version by its row id, with its principles."""
    constitution = session.scalar(
        select(Constitution)
        .where(Constitution.id == constitution_id)
        .options(selectinload(Constitution.principles))
    )
    if constitution is None:
        raise NotFound(f"constitution version {constitution_id} not found", "constitution")
    return constitution


def list_constitutions(session: Session, after_id: int, limit: int) -> list[Constitution]:
    """The latest version of each constitution, in id order of that version."""
    latest = (
        select(Constitution.name, func.max(Constitution.version).label("version"))
        .group_by(Constitution.name)
        .subquery()
    )
    return list(
        session.scalars(
            select(Constitution)
            .join(
                latest,
                (latest.c.name == Constitution.name) & (latest.c.version == Constitution.version),
            )
            .where(Constitution.id > after_id)
            .order_by(Constitution.id)
            .limit(limit)
            .options(selectinload(Constitution.principles))
        )
    )


def list_versions(session: Session, name: str) -> list[Constitution]:
    """Every version of a constitution, oldest first."""
    versions = list(
        session.scalars(
            select(Constitution)
            .where(Constitution.name == name)
            .order_by(Constitution.version)
            .options(selectinload(Constitution.principles))
        )
    )
    if not versions:
        raise NotFound(f"constitution {name!r} not found", "name")
    return versions
