"""AddUsers, DeleteUsers, ModifyUserGroups, ModifyUserPasswords and ListUsers (User.N.* parameters).

Passwords are checked, hashed (salted scrypt) and dropped: no response, log or task ever holds one.
`Async` is accepted and the change is made within the call either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcplane.api.action import Action, Call
from hpcplane.api.actions.clusters_admin import CLUSTER_ARN, api_time, page
from hpcplane.api.listparams import indexed
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.services.users import UserEntry

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.]{5,29}$")
_GROUPS = ("users", "wheel")
_SPECIAL = set("()~!@#$%^&*-_+=|{}[]:;'\"/<>,.?\\")


@dataclass(frozen=True, slots=True)
class UsersCall:
    cluster_id: str
    users: list[UserEntry]


def _number(param: str) -> str:
    return param.split(".")[1]


def _check_password(param: str, password: str) -> None:
    kinds = sum(
        any(test(c) for c in password)
        for test in (str.isupper, str.islower, str.isdigit, lambda c: c in _SPECIAL)
    )
    if not 8 <= len(password) <= 30 or kinds < 3:
        raise InvalidParams(param, "needs 8 to 30 characters of at least three kinds")


def _read(p: Params, *, group: bool, password: bool, group_required: bool = False) -> UsersCall:
    p.bool("Async", default=False)
    raw = p.raw()
    names = indexed(raw, "User", "Name", maximum=100, required=True)
    groups = {_number(k): v for k, v in indexed(raw, "User", "Group", maximum=100, required=False)}
    secrets = {_number(k): v for k, v in indexed(raw, "User", "Password", maximum=100, required=False)}
    entries: list[UserEntry] = []
    for param, name in names:
        number = _number(param)
        if not _NAME.match(name):
            raise InvalidParams(param, "needs 6 to 30 letters, digits or '.', a letter first")
        chosen = groups.get(number) if group else None
        if group and chosen is None and group_required:
            raise InvalidParams(f"User.{number}.Group", "is required")
        if chosen is not None and chosen not in _GROUPS:
            raise InvalidParams(f"User.{number}.Group", "must be users or wheel")
        secret = secrets.get(number) if password else None
        if password:
            if secret is None:
                raise InvalidParams(f"User.{number}.Password", "is required")
            _check_password(f"User.{number}.Password", secret)
        entries.append(UserEntry(param, name, chosen, secret))
    if len({entry.name for entry in entries}) != len(entries):
        raise InvalidParams("User.N.Name", "names a user twice")
    return UsersCall(p.required_str("ClusterId", max_length=64), entries)


def read_add(p: Params) -> UsersCall:
    return _read(p, group=True, password=True)


def read_delete(p: Params) -> UsersCall:
    return _read(p, group=False, password=False)


def read_groups(p: Params) -> UsersCall:
    return _read(p, group=True, password=False, group_required=True)


def read_passwords(p: Params) -> UsersCall:
    return _read(p, group=False, password=True)


def add(call: Call, users: UsersCall) -> dict[str, object]:
    call.services.users.add(call.principal, users.cluster_id, users.users)
    return {"RequestId": call.request_id}


def delete(call: Call, users: UsersCall) -> dict[str, object]:
    call.services.users.delete(call.principal, users.cluster_id, users.users)
    return {"RequestId": call.request_id}


def modify_groups(call: Call, users: UsersCall) -> dict[str, object]:
    call.services.users.modify_groups(call.principal, users.cluster_id, users.users)
    return {"RequestId": call.request_id}


def modify_passwords(call: Call, users: UsersCall) -> dict[str, object]:
    call.services.users.modify_passwords(call.principal, users.cluster_id, users.users)
    return {"RequestId": call.request_id}


@dataclass(frozen=True, slots=True)
class UserQuery:
    cluster_id: str
    page_number: int
    page_size: int


def read_list(p: Params) -> UserQuery:
    number, size = page(p, maximum=50)
    return UserQuery(p.required_str("ClusterId", max_length=64), number, size)


def list_users(call: Call, query: UserQuery) -> dict[str, object]:
    found = call.services.users.list(
        call.principal, query.cluster_id, page_number=query.page_number, page_size=query.page_size
    )
    return {
        "RequestId": call.request_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": found.total,
        "Users": {
            "UserInfo": [
                {"Name": u["name"], "Group": u["user_group"], "AddTime": api_time(u["created_at"])}
                for u in found.users
            ]
        },
    }


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


ADD_USERS = Action("AddUsers", _on_cluster("AddUsers"), read_add, add)
DELETE_USERS = Action("DeleteUsers", _on_cluster("DeleteUsers"), read_delete, delete)
MODIFY_USER_GROUPS = Action("ModifyUserGroups", _on_cluster("ModifyUserGroups"), read_groups, modify_groups)
MODIFY_USER_PASSWORDS = Action(
    "ModifyUserPasswords", _on_cluster("ModifyUserPasswords"), read_passwords, modify_passwords
)
LIST_USERS = Action("ListUsers", _on_cluster("ListUsers"), read_list, list_users)
