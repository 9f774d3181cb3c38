"""Accounts: roles, argon2 passwords, hashed revocable tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.accounts import (
    AccountService,
    ApiToken,
    InactiveUser,
    InvalidAccountInput,
    UnknownUser,
    User,
)
from core.db import transaction
from web.context import AppContext


def test_add_authenticate_and_disable(instance: AppContext) -> None:
    with transaction(instance.engine) as s:
        AccountService(s).add("alice", "legal", "correct horse")
    with transaction(instance.engine) as s:
        svc = AccountService(s)
        user = svc.authenticate("alice", "correct horse")
        assert user is not None and user.role == "legal"
        assert svc.authenticate("alice", "wrong password") is None
        assert svc.authenticate("nobody", "correct horse") is None
        stored = s.scalar(select(User.password_hash).where(User.name == "alice"))
        assert stored is not None and stored.startswith("$argon2id$")
        assert "correct horse" not in stored
        svc.disable("alice")
    with transaction(instance.engine) as s:
        svc = AccountService(s)
        assert svc.authenticate("alice", "correct horse") is None
        with pytest.raises(InactiveUser):
            svc.require_active("alice")


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [
        ("", "legal", "longenough"),
        ("has space", "legal", "longenough"),
        ("../etc", "legal", "longenough"),
        ("system", "admin", "longenough"),
        ("bob", "superuser", "longenough"),
        ("bob", "legal", "short"),
    ],
)
def test_bad_input_is_refused_and_adds_nothing(
    instance: AppContext, name: str, role: str, password: str
) -> None:
    with pytest.raises(InvalidAccountInput), transaction(instance.engine) as s:
        AccountService(s).add(name, role, password)
    with transaction(instance.engine) as s:
        assert AccountService(s).list() == []


def test_duplicate_user_refused(instance: AppContext) -> None:
    with transaction(instance.engine) as s:
        AccountService(s).add("bob", "field", "password1")
    with (
        pytest.raises(InvalidAccountInput, match="already exists"),
        transaction(instance.engine) as s,
    ):
        AccountService(s).add("bob", "admin", "password2")


def test_tokens_are_stored_hashed_and_revocable(instance: AppContext) -> None:
    with transaction(instance.engine) as s:
        svc = AccountService(s)
        svc.add("carol", "auditor", "password1")
        token = svc.issue_token("carol")
    with transaction(instance.engine) as s:
        svc = AccountService(s)
        user = svc.user_for_token(token)
        assert user is not None and user.name == "carol"
        assert svc.user_for_token(token + "x") is None
        stored = list(s.scalars(select(ApiToken.token_sha256)))
        assert token not in stored and len(stored) == 1
        assert svc.revoke_tokens("carol") == 1
    with transaction(instance.engine) as s:
        assert AccountService(s).user_for_token(token) is None


def test_disabling_revokes_tokens(instance: AppContext) -> None:
    with transaction(instance.engine) as s:
        svc = AccountService(s)
        svc.add("dave", "field", "password1")
        token = svc.issue_token("dave")
        svc.disable("dave")
    with transaction(instance.engine) as s:
        assert AccountService(s).user_for_token(token) is None
        with pytest.raises(InactiveUser):
            AccountService(s).issue_token("dave")
        with pytest.raises(UnknownUser):
            AccountService(s).get("erin")
