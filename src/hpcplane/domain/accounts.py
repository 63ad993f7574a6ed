"""Accounts, RAM users and the principal a verified request acts as."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class KeyStatus(enum.StrEnum):
    """An AccessKey is either usable or disabled."""

    ACTIVE = "Active"
    INACTIVE = "Inactive"


@dataclass(frozen=True, slots=True)
class Account:
    """A tenant: owns clusters, tasks and keys; E-HPC may be disabled for it."""

    id: str
    name: str
    ehpc_enabled: bool


@dataclass(frozen=True, slots=True)
class StsSession:
    """What a temporary (STS) AccessKey carries: the assumed role, its token and its end."""

    role_id: str
    role_name: str
    session_name: str
    token_hash: str
    expires_at: datetime
    session_policy: str | None = None


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An AccessKey with its secret in clear; only the store decrypts it."""

    id: str
    account_id: str
    user_id: str | None
    user_name: str | None
    secret: str
    status: KeyStatus
    sts: StsSession | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified request acts as: the account itself, one of its RAM users, or a role session."""

    account: Account
    access_key_id: str
    user_id: str | None = None
    user_name: str | None = None
    sts: StsSession | None = None

    @property
    def is_account(self) -> bool:
        """The account's own keys are always allowed."""
        return self.user_id is None and self.sts is None

    @property
    def arn(self) -> str:
        """The principal as RAM names it: root, user/NAME, or assumed-role/ROLE/SESSION."""
        base = f"acs:ram::{self.account.id}"
        if self.sts is not None:
            return f"{base}:assumed-role/{self.sts.role_name}/{self.sts.session_name}"
        if self.user_name is not None:
            return f"{base}:user/{self.user_name}"
        return f"{base}:root"
