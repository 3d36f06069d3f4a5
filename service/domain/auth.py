"""API keys: creation, verification (hashed, with a short in-process cache), revocation."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import begin_write, utcnow
from service.errors import Conflict, NotFound, Unauthorized
from service.models import ROLE_RANK, ApiKey, Role, User

KEY_PREFIX = "arb_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    name: str
    role: Role

    def at_least(self, role: Role) -> bool:
        """True when the caller's role is `role` or above."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_key(key: str) -> str:
    """SHA-256 of a key: keys are 256-bit random, so a fast hash is enough to store them."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyCache:
    """Verified keys remembered for a few seconds, so a request needs no key lookup."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self.generation = 0  # one more on every clear()
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> Principal | None:
        """The cached principal for a key hash, if still fresh."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal, generation: int | None = None) -> None:
        """Remember a verified key; not if the cache was cleared since `generation` was read.

        A lookup that started before a revocation's clear() may have read the key as live.
        """
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self.ttl_seconds, principal)

    def clear(self) -> None:
        """Forget every key (after a revocation in this process)."""
        with self._lock:
            self._entries.clear()
            self.generation += 1


KEY_OWNER = (
    select(User.id, User.name, User.role)
    .join(ApiKey, ApiKey.user_id == User.id)
    .where(ApiKey.key_hash == bindparam("p_key_hash"), ApiKey.revoked_at.is_(None))
)
"""The owner (id, name, role) of an unrevoked key, by the key's hash."""


def authenticate(session: Session, key: str, cache: KeyCache) -> Principal:
    """The principal owning an unrevoked key, or Unauthorized."""
    key_hash = hash_key(key)
    cached = cache.get(key_hash)
    if cached is not None:
        return cached
    generation = cache.generation
    row = session.execute(KEY_OWNER, {"p_key_hash": key_hash}).first()
    if row is None:
        raise Unauthorized("invalid or revoked API key")
    principal = Principal(user_id=row.id, name=row.name, role=row.role)
    cache.put(key_hash, principal, generation)
    return principal


def _new_key(session: Session, user: User, description: str | None) -> tuple[ApiKey, str]:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        key_hash=hash_key(secret),
        prefix=secret[: len(KEY_PREFIX) + 6],
        description=description,
    )
    session.add(key)
    session.flush()
    return key, secret


def create_key(
    session: Session, user_name: str, role: Role, description: str | None = None
) -> tuple[ApiKey, User, str]:
    """Create a key for `user_name` (creating the user with `role` on first use)."""
    begin_write(session)
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name, role=role)
        session.add(user)
        try:
            session.flush()
        except IntegrityError as exc:  # created by a concurrent request a moment ago
            session.rollback()
            raise Conflict(f"user {user_name!r} was just created; retry", "user") from exc
    elif user.role != role:
        raise Conflict(f"user {user_name!r} already exists with role {user.role.value}", "role")
    key, secret = _new_key(session, user, description)
    session.commit()
    return key, user, secret


def list_keys(session: Session, after_id: int, limit: int) -> list[tuple[ApiKey, User]]:
    """Keys in id order after a cursor, with their users."""
    rows = session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.id > after_id)
        .order_by(ApiKey.id)
        .limit(limit)
    ).all()
    return [(k, u) for k, u in rows]


def revoke_key(session: Session, key_id: int, cache: KeyCache) -> tuple[ApiKey, User]:
    """Revoke a key (idempotent); it stops working everywhere within the cache TTL."""
    begin_write(session)
    row = session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
    ).first()
    if row is None:
        raise NotFound(f"key {key_id} not found", "key_id")
    key, user = row
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    session.commit()
    cache.clear()
    return key, user


def bootstrap_admin(session: Session, key: str | None = None) -> str | None:
    """On an empty database, create the first admin and return its key; else None."""
    begin_write(session)
    if session.scalar(select(func.count()).select_from(User)):
        session.rollback()
        return None
    admin = User(name="admin", role=Role.admin)
    session.add(admin)
    session.flush()
    if key is None:
        _, key = _new_key(session, admin, "created on first start")
    else:
        session.add(
            ApiKey(
                user_id=admin.id,
                key_hash=hash_key(key),
                prefix=key[:10],
                description="ARBITER_BOOTSTRAP_ADMIN_KEY",
            )
        )
    session.commit()
    return key
