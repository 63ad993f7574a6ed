"""RAM and STS use cases: groups, roles, policies and attachments (the CLI), and AssumeRole."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from hpcplane.authz.policy import PolicyError, parse_policy
from hpcplane.authz.trust import parse_trust, trust_allows
from hpcplane.clock import Clock
from hpcplane.domain.accounts import Account, Principal
from hpcplane.domain.errors import (
    AssumeRoleDenied,
    InvalidDurationSeconds,
    InvalidRoleArn,
    InvalidRoleSessionName,
    PolicyGrammar,
    RoleNotFound,
)
from hpcplane.domain.sts import new_token, token_hash
from hpcplane.services.accounts import AccountError
from hpcplane.store import accounts as account_store
from hpcplane.store import ram as store
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox

_ROLE_ARN = re.compile(r"^acs:ram::([0-9]+):role/([A-Za-z0-9.\-]{1,64})$", re.IGNORECASE)
_SESSION_NAME = re.compile(r"^[A-Za-z0-9.@_\-]{2,64}$")
_NAME = re.compile(r"^[A-Za-z0-9.@_\-]{1,128}$")


def _new_id() -> str:
    return str(secrets.randbelow(9 * 10**15) + 10**15)


_Insert = Callable[[Connection, str, str, datetime], None]


@dataclass(frozen=True, slots=True)
class StsCredentials:
    """What AssumeRole returns."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: datetime
    role_arn: str
    assumed_role_id: str
    assumed_role_arn: str


class RamService:
    """Creates the RAM entities of an account, and issues STS credentials."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    # --- CLI ------------------------------------------------------------------------------------

    def create_group(self, account_ref: str, name: str) -> str:
        return self._create(
            account_ref,
            "group",
            name,
            lambda conn, gid, acct, now: store.insert_group(conn, gid, acct, name, now),
        )

    def add_user_to_group(self, account_ref: str, user: str, group: str) -> bool:
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            user_id = self._must(account_store.find_user(conn, account.id, user), account, "RAM user", user)
            group_id = self._must(store.find_id(conn, "group", account.id, group), account, "group", group)
            return store.add_member(conn, group_id, user_id)

    def create_policy(self, account_ref: str, name: str, document: str) -> str:
        try:
            parse_policy(document)
        except PolicyError as error:
            raise AccountError(f"policy {name!r} is malformed at {error.position}: {error}") from None
        return self._create(
            account_ref,
            "policy",
            name,
            lambda conn, pid, acct, now: store.insert_policy(conn, pid, acct, name, document, now),
        )

    def create_role(self, account_ref: str, name: str, trust: str, max_session_duration: int = 3600) -> str:
        if not 3600 <= max_session_duration <= 43200:
            raise AccountError("the maximum session duration is 3600 to 43200 seconds")
        try:
            parse_trust(trust)
        except PolicyError as error:
            raise AccountError(
                f"trust policy of {name!r} is malformed at {error.position}: {error}"
            ) from None
        return self._create(
            account_ref,
            "role",
            name,
            lambda conn, rid, acct, now: store.insert_role(
                conn, rid, acct, name, trust, max_session_duration, now
            ),
        )

    def attach(self, account_ref: str, policy: str, kind: str, name: str, *, attach: bool = True) -> bool:
        """Attach (or detach) POLICY to the user, group or role called `name`."""
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            policy_id = self._must(
                store.find_id(conn, "policy", account.id, policy), account, "policy", policy
            )
            if kind == "user":
                target = account_store.find_user(conn, account.id, name)
            else:
                target = store.find_id(conn, kind, account.id, name)
            target_id = self._must(target, account, kind, name)
            change = store.attach if attach else store.detach
            return change(conn, policy_id, kind, target_id)

    def _create(self, account_ref: str, kind: str, name: str, insert: _Insert) -> str:
        if not _NAME.match(name):
            raise AccountError(f"a {kind} name has 1 to 128 letters, digits or . @ _ -")
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            if store.find_id(conn, kind, account.id, name) is not None:
                raise AccountError(f"account {account.name} has a {kind} {name!r} already")
            new_id = _new_id()
            insert(conn, new_id, account.id, self._clock.now())
            return new_id

    @staticmethod
    def _must(value: str | None, account: Account, kind: str, name: str) -> str:
        if value is None:
            raise AccountError(f"account {account.name} has no {kind} {name!r}")
        return value

    @staticmethod
    def _account(conn: Connection, account_ref: str) -> Account:
        account = account_store.find_account(conn, account_ref)
        if account is None:
            raise AccountError(f"no account {account_ref!r} (give its AccountId or its name)")
        return account

    def account(self, account_ref: str) -> Account:
        with self._db.read() as conn:
            return self._account(conn, account_ref)

    # --- STS ------------------------------------------------------------------------------------

    def assume_role(
        self,
        caller: Principal,
        role_arn: str,
        session_name: str,
        duration: int | None,
        policy: str | None,
    ) -> StsCredentials:
        """Issue temporary credentials for the role, if its trust policy admits the caller."""
        match = _ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise InvalidRoleArn()
        account_id, role_name = match.groups()
        if not _SESSION_NAME.fullmatch(session_name):
            raise InvalidRoleSessionName()
        if policy is not None:
            try:
                parse_policy(policy)
            except PolicyError as error:
                raise PolicyGrammar(position=error.position) from None
        now = self._clock.now()
        with self._db.write() as conn:
            role = (
                store.get_role(conn, caller.account.id, role_name)
                if account_id == caller.account.id
                else None
            )
            if role is None:
                raise RoleNotFound(role=role_arn)
            role_id, name, trust, max_duration = role
            seconds = 3600 if duration is None else duration
            if not 900 <= seconds <= max_duration:
                raise InvalidDurationSeconds(maximum=str(max_duration))
            if not trust_allows(trust, caller.account.id, caller.arn):
                raise AssumeRoleDenied()
            key_id = "STS." + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(28))
            secret = secrets.token_urlsafe(33)
            token = new_token(key_id)
            expires = now + timedelta(seconds=seconds)
            store.insert_sts(
                conn,
                self._box,
                key_id=key_id,
                account_id=caller.account.id,
                role_id=role_id,
                session_name=session_name,
                secret=secret,
                token_hash=token_hash(token),
                session_policy=policy,
                expires_at=expires,
                now=now,
            )
        arn = f"acs:ram::{caller.account.id}:role/{name.lower()}"
        return StsCredentials(
            access_key_id=key_id,
            access_key_secret=secret,
            security_token=token,
            expiration=expires,
            role_arn=arn,
            assumed_role_id=f"{role_id}:{session_name}",
            assumed_role_arn=f"{arn}/{session_name}",
        )
