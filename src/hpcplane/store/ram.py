"""RAM in the store: groups, roles, policies, attachments, STS credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, union_all

from hpcplane.domain.accounts import AccessKey, KeyStatus, StsSession
from hpcplane.store.secrets import SecretBox
from hpcplane.store.tables import (
    ram_attachments,
    ram_group_members,
    ram_groups,
    ram_policies,
    ram_roles,
    sts_credentials,
)

PRINCIPAL_TYPES = ("user", "group", "role")


def find_id(conn: Connection, kind: str, account_id: str, name: str) -> str | None:
    """The id of the account's group, role or policy called `name`."""
    table = {"group": ram_groups, "role": ram_roles, "policy": ram_policies}[kind]
    return conn.execute(
        select(table.c.id).where(table.c.account_id == account_id, table.c.name == name)
    ).scalar_one_or_none()


def insert_group(conn: Connection, group_id: str, account_id: str, name: str, now: datetime) -> None:
    conn.execute(insert(ram_groups).values(id=group_id, account_id=account_id, name=name, created_at=now))


def add_member(conn: Connection, group_id: str, user_id: str) -> bool:
    """Add the user to the group; False when it was a member already."""
    exists = conn.execute(
        select(ram_group_members.c.user_id).where(
            ram_group_members.c.group_id == group_id, ram_group_members.c.user_id == user_id
        )
    ).first()
    if exists:
        return False
    conn.execute(insert(ram_group_members).values(group_id=group_id, user_id=user_id))
    return True


def insert_role(
    conn: Connection, role_id: str, account_id: str, name: str, trust: str, max_duration: int, now: datetime
) -> None:
    conn.execute(
        insert(ram_roles).values(
            id=role_id,
            account_id=account_id,
            name=name,
            trust_document=trust,
            max_session_duration=max_duration,
            created_at=now,
        )
    )


def get_role(conn: Connection, account_id: str, name: str) -> tuple[str, str, str, int] | None:
    """(id, name, trust document, max session duration) of the role, matched without regard to case."""
    for row in conn.execute(
        select(
            ram_roles.c.id, ram_roles.c.name, ram_roles.c.trust_document, ram_roles.c.max_session_duration
        ).where(ram_roles.c.account_id == account_id)
    ):
        if row.name.lower() == name.lower():
            return row.id, row.name, row.trust_document, row.max_session_duration
    return None


def insert_policy(
    conn: Connection, policy_id: str, account_id: str, name: str, document: str, now: datetime
) -> None:
    conn.execute(
        insert(ram_policies).values(
            id=policy_id, account_id=account_id, name=name, document=document, created_at=now
        )
    )


def attach(conn: Connection, policy_id: str, principal_type: str, principal_id: str) -> bool:
    """Attach; False when it was attached already."""
    where = (
        ram_attachments.c.policy_id == policy_id,
        ram_attachments.c.principal_type == principal_type,
        ram_attachments.c.principal_id == principal_id,
    )
    if conn.execute(select(ram_attachments.c.policy_id).where(*where)).first():
        return False
    conn.execute(
        insert(ram_attachments).values(
            policy_id=policy_id, principal_type=principal_type, principal_id=principal_id
        )
    )
    return True


def detach(conn: Connection, policy_id: str, principal_type: str, principal_id: str) -> bool:
    """Detach; False when it was not attached."""
    result = conn.execute(
        delete(ram_attachments).where(
            ram_attachments.c.policy_id == policy_id,
            ram_attachments.c.principal_type == principal_type,
            ram_attachments.c.principal_id == principal_id,
        )
    )
    return bool(result.rowcount)


def user_policies(conn: Connection, user_id: str) -> list[tuple[str, str]]:
    """(name, document) of the policies attached to the user and to the groups it belongs to."""
    direct = select(ram_attachments.c.policy_id).where(
        ram_attachments.c.principal_type == "user", ram_attachments.c.principal_id == user_id
    )
    via_groups = (
        select(ram_attachments.c.policy_id)
        .select_from(
            ram_attachments.join(
                ram_group_members, ram_group_members.c.group_id == ram_attachments.c.principal_id
            )
        )
        .where(ram_attachments.c.principal_type == "group", ram_group_members.c.user_id == user_id)
    )
    ids = union_all(direct, via_groups).subquery()
    return _policies(conn, select(ids.c.policy_id))


def role_policies(conn: Connection, role_id: str) -> list[tuple[str, str]]:
    """(name, document) of the policies attached to the role."""
    ids = select(ram_attachments.c.policy_id).where(
        ram_attachments.c.principal_type == "role", ram_attachments.c.principal_id == role_id
    )
    return _policies(conn, ids)


def _policies(conn: Connection, ids: object) -> list[tuple[str, str]]:
    rows = conn.execute(
        select(ram_policies.c.name, ram_policies.c.document)
        .where(ram_policies.c.id.in_(ids))  # type: ignore[arg-type]
        .order_by(ram_policies.c.name)
    )
    return [(row.name, row.document) for row in rows]


def insert_sts(
    conn: Connection,
    box: SecretBox,
    *,
    key_id: str,
    account_id: str,
    role_id: str,
    session_name: str,
    secret: str,
    token_hash: str,
    session_policy: str | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    conn.execute(
        insert(sts_credentials).values(
            id=key_id,
            account_id=account_id,
            role_id=role_id,
            session_name=session_name,
            secret_enc=box.seal(secret),
            token_hash=token_hash,
            session_policy=session_policy,
            expires_at=expires_at,
            created_at=now,
        )
    )


def get_sts_key(conn: Connection, box: SecretBox, key_id: str) -> AccessKey | None:
    """The temporary AccessKey `key_id` with its session, or None."""
    row = conn.execute(
        select(sts_credentials, ram_roles.c.name.label("role_name"))
        .select_from(sts_credentials.join(ram_roles, ram_roles.c.id == sts_credentials.c.role_id))
        .where(sts_credentials.c.id == key_id)
    ).first()
    if row is None:
        return None
    return AccessKey(
        id=row.id,
        account_id=row.account_id,
        user_id=None,
        user_name=None,
        secret=box.open(row.secret_enc),
        status=KeyStatus.ACTIVE,
        sts=StsSession(
            role_id=row.role_id,
            role_name=row.role_name,
            session_name=row.session_name,
            token_hash=row.token_hash,
            expires_at=row.expires_at,
            session_policy=row.session_policy,
        ),
    )


def purge_sts(conn: Connection, before: datetime) -> int:
    return conn.execute(delete(sts_credentials).where(sts_credentials.c.expires_at < before)).rowcount or 0
