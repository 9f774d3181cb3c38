"""Users (the actors of the log), their roles, passwords and revocable API tokens.

Passwords are argon2id hashes; API tokens are random and stored only as SHA-256, so a stolen
database does not yield working tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, DateTime, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.clock import Clock, SystemClock
from core.db import Base
from core.errors import InputError, NotFoundError, TiezhengError

SYSTEM_ACTOR = "system"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_PREFIX = "tz_"
_hasher = PasswordHasher()


class Role(StrEnum):
    FIELD = "field"
    LEGAL = "legal"
    AUDITOR = "auditor"
    ADMIN = "admin"


class AccountError(TiezhengError):
    """Root of account errors."""


class UnknownUser(NotFoundError, AccountError):
    pass


class InactiveUser(AccountError):
    pass


class InvalidAccountInput(InputError, AccountError):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or name == SYSTEM_ACTOR:
        raise InvalidAccountInput(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (and not {SYSTEM_ACTOR!r})"
        )
    return name


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidAccountInput(f"unknown role {role!r}; choose one of: {choices}") from None


def generate_password() -> str:
    return secrets.token_urlsafe(15)


class AccountService:
    """Create, list, disable users; issue and check tokens. The caller owns the transaction."""

    def __init__(self, session: Session, *, clock: Clock | None = None) -> None:
        self.session = session
        self.clock = clock or SystemClock()

    def add(self, name: str, role: str, password: str) -> User:
        validate_name(name)
        parsed = parse_role(role)
        if len(password) < 8:
            raise InvalidAccountInput("password too short: use at least 8 characters")
        if self.session.scalar(select(User).where(User.name == name)) is not None:
            raise InvalidAccountInput(f"user {name!r} already exists")
        user = User(
            name=name,
            role=parsed.value,
            password_hash=_hasher.hash(password),
            active=True,
            created_at=self.clock.now(),
        )
        self.session.add(user)
        self.session.flush()
        return user

    def get(self, name: str) -> User:
        user = self.session.scalar(select(User).where(User.name == name))
        if user is None:
            raise UnknownUser(f"no user named {name!r}")
        return user

    def list(self) -> list[User]:
        return list(self.session.scalars(select(User).order_by(User.name)))

    def disable(self, name: str) -> User:
        user = self.get(name)
        if user.active:
            user.active = False
            user.disabled_at = self.clock.now()
            now = self.clock.now()
            for token in self.session.scalars(
                select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            ):
                token.revoked_at = now
        return user

    def require_active(self, name: str) -> User:
        """The user named ``name``, who must exist and be active (a log actor)."""
        user = self.get(name)
        if not user.active:
            raise InactiveUser(f"user {name!r} is disabled")
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.session.scalar(select(User).where(User.name == name))
        if user is None or not user.active:
            # Spend the same time as a real check, so names cannot be probed by timing.
            _hasher.hash(password)
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    def issue_token(self, name: str) -> str:
        user = self.require_active(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.session.add(
            ApiToken(
                user_id=user.id,
                token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                created_at=self.clock.now(),
            )
        )
        self.session.flush()
        return token

    def revoke_tokens(self, name: str) -> int:
        user = self.get(name)
        now = self.clock.now()
        count = 0
        for token in self.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ):
            token.revoked_at = now
            count += 1
        return count

    def user_for_token(self, token: str) -> User | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = self.session.scalar(
            select(ApiToken).where(ApiToken.token_sha256 == digest, ApiToken.revoked_at.is_(None))
        )
        if row is None:
            return None
        user = self.session.get(User, row.user_id)
        if user is None or not user.active:
            return None
        return user
