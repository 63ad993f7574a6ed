"""The CLI of RAM (users, groups, policies, roles), STS and the audit trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hpcplane.cli_common import run, settings_from, store_options
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import HpcplaneError
from hpcplane.services.accounts import AccountError
from hpcplane.store import audit as audit_store


@click.group()
def ram() -> None:
    """RAM: users, groups, policies and roles of an account (ACCOUNT is its id or its name)."""


@ram.command("create-user")
@click.argument("account")
@click.argument("user")
@store_options
def create_user(account: str, user: str, **options: Any) -> None:
    """Create RAM user USER; give it keys with `hpcplane keys create ACCOUNT --user USER`."""
    run(settings_from(**options), lambda s: click.echo(f"UserId: {s.accounts.create_user(account, user)}"))


@ram.command("create-group")
@click.argument("account")
@click.argument("group")
@store_options
def create_group(account: str, group: str, **options: Any) -> None:
    """Create group GROUP."""
    run(settings_from(**options), lambda s: click.echo(f"GroupId: {s.ram.create_group(account, group)}"))


@ram.command("add-user-to-group")
@click.argument("account")
@click.argument("user")
@click.argument("group")
@store_options
def add_user_to_group(account: str, user: str, group: str, **options: Any) -> None:
    """Make USER a member of GROUP: the group's policies then apply to it."""

    def apply(services: Any) -> None:
        added = services.ram.add_user_to_group(account, user, group)
        click.echo(f"{user} {'added to' if added else 'was already in'} {group}")

    run(settings_from(**options), apply)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None


@ram.command("create-policy")
@click.argument("account")
@click.argument("policy")
@click.option("--document", type=click.Path(path_type=Path), required=True, help="the policy JSON file")
@store_options
def create_policy(account: str, policy: str, document: Path, **options: Any) -> None:
    """Create custom policy POLICY from a JSON document (refused, with the position, if malformed)."""
    text = _read(document)
    run(
        settings_from(**options),
        lambda s: click.echo(f"PolicyId: {s.ram.create_policy(account, policy, text)}"),
    )


@ram.command("create-role")
@click.argument("account")
@click.argument("role")
@click.option("--trust", type=click.Path(path_type=Path), required=True, help="the trust policy JSON file")
@click.option("--max-session-duration", type=int, default=3600, show_default=True)
@store_options
def create_role(account: str, role: str, trust: Path, max_session_duration: int, **options: Any) -> None:
    """Create role ROLE; its ARN is acs:ram::ACCOUNT_ID:role/ROLE."""
    text = _read(trust)

    def apply(services: Any) -> None:
        services.ram.create_role(account, role, text, max_session_duration)
        click.echo(f"Arn: acs:ram::{services.ram.account(account).id}:role/{role.lower()}")

    run(settings_from(**options), apply)


def _attachment(attach: bool) -> Any:
    def command(
        account: str, policy: str, user: str | None, group: str | None, role: str | None, **options: Any
    ) -> None:
        targets = [(kind, name) for kind, name in (("user", user), ("group", group), ("role", role)) if name]
        if len(targets) != 1:
            raise click.UsageError("give exactly one of --user, --group, --role")
        kind, name = targets[0]

        def apply(services: Any) -> None:
            changed = services.ram.attach(account, policy, kind, name, attach=attach)
            verb = "attached to" if attach else "detached from"
            state = verb if changed else ("was already " if attach else "was not ") + verb
            click.echo(f"{policy} {state} {kind} {name}")

        run(settings_from(**options), apply)

    for decorator in reversed(
        [
            click.argument("account"),
            click.argument("policy"),
            click.option("--user", default=None),
            click.option("--group", default=None),
            click.option("--role", default=None),
            store_options,
        ]
    ):
        command = decorator(command)
    return command


ram.command("attach-policy", help="Attach POLICY to one user, group or role.")(_attachment(True))
ram.command("detach-policy", help="Detach POLICY from one user, group or role.")(_attachment(False))


@click.group()
def sts() -> None:
    """STS: temporary credentials for a role."""


@sts.command("assume-role")
@click.argument("role_arn")
@click.option(
    "--duration", type=int, default=3600, show_default=True, help="seconds, 900 to the role's maximum"
)
@click.option("--session-name", default="hpcplane-cli", show_default=True)
@click.option("--policy", type=click.Path(path_type=Path), default=None, help="a session policy JSON file")
@click.option("--json", "as_json", is_flag=True)
@store_options
def assume_role(
    role_arn: str, duration: int, session_name: str, policy: Path | None, as_json: bool, **options: Any
) -> None:
    """Issue an AccessKeyId, AccessKeySecret and SecurityToken for ROLE_ARN (as the role's account)."""
    text = _read(policy) if policy else None

    def apply(services: Any) -> None:
        account_id = role_arn.split(":")[3] if role_arn.count(":") >= 4 else ""
        try:
            account = services.ram.account(account_id)
            caller = Principal(account=account, access_key_id="cli")
            issued = services.ram.assume_role(caller, role_arn, session_name, duration, text)
        except HpcplaneError as error:
            raise AccountError(f"{error.code}: {error.message}") from None
        record = {
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "SecurityToken": issued.security_token,
            "Expiration": issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if as_json:
            click.echo(json.dumps(record))
        else:
            for name, value in record.items():
                click.echo(f"{name}: {value}")

    run(settings_from(**options), apply)


@click.group()
def audit() -> None:
    """The audit trail: every call, allowed or refused."""


def _print_records(records: list[audit_store.AuditRecord], as_json: bool) -> None:
    for record in reversed(records):
        row = {
            "Time": record.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RequestId": record.request_id,
            "AccountId": record.account_id,
            "Principal": record.principal,
            "Action": record.action,
            "Resource": record.resource,
            "SourceIp": record.source_ip,
            "Decision": record.decision,
            "ErrorCode": record.error_code,
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            fields = (record.action, record.principal, record.resource, record.source_ip)
            click.echo(
                f"{row['Time']} {record.request_id} {record.decision:<7} {record.error_code or 'OK':<28} "
                + " ".join(field or "-" for field in fields)
            )


def _since(text: str | None) -> datetime | None:
    """An ISO 8601 instant, or a duration back from now such as 30s, 15m, 2h, 7d."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("give an ISO 8601 time or a duration such as 15m") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@audit.command("tail")
@click.option("-n", "--lines", "limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@store_options
def tail(limit: int, as_json: bool, **options: Any) -> None:
    """The newest calls, oldest first."""

    def show(services: Any) -> None:
        with services.db.read() as conn:
            _print_records(audit_store.search(conn, limit=limit), as_json)

    run(settings_from(**options), show)


@audit.command("search")
@click.option("--action", default=None, help="RAM action, e.g. ehpc:ListTasks")
@click.option("--principal", default=None, help="principal ARN, or a user name")
@click.option("--since", default=None, help="ISO 8601 time, or 30s / 15m / 2h / 7d ago")
@click.option("--account", default=None, help="AccountId")
@click.option("-n", "--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@store_options
def search(
    action: str | None,
    principal: str | None,
    since: str | None,
    account: str | None,
    limit: int,
    as_json: bool,
    **options: Any,
) -> None:
    """Calls matching every filter given, oldest first."""
    start = _since(since)

    def show(services: Any) -> None:
        with services.db.read() as conn:
            records = audit_store.search(
                conn, action=action, principal=principal, since=start, account_id=account, limit=limit
            )
        _print_records(records, as_json)

    run(settings_from(**options), show)
