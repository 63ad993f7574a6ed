"""Accounts, RAM users and the principal a verified request acts as."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
class AccessKey:
    """An AccessKey with its secret in clear; only the store decrypts it."""

    id: str
    account_id: str
    user_id: str | None
    user_name: str | None
    secret: str
    status: KeyStatus


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified request acts as: the account itself or one of its RAM users."""

    account: Account
    access_key_id: str
    user_id: str | None = None
    user_name: str | None = None

    @property
    def is_account(self) -> bool:
        """The account's own keys are always allowed."""
        return self.user_id is None
