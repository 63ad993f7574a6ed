"""What every CLI command shares: the store options, settings, and running against the services."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hpcplane.config import Settings
from hpcplane.domain.errors import DbError
from hpcplane.services.accounts import AccountError, IssuedKey
from hpcplane.store.secrets import SecretKeyMismatch

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    """--home, --database-url and --redis-url, shared by every command that opens the store."""
    options = [
        click.option("--home", type=click.Path(path_type=Path), default=None, help="[HPCPLANE_HOME]"),
        click.option("--database-url", default=None, help="[HPCPLANE_DATABASE_URL]"),
        click.option("--redis-url", default=None, help="Redis for the nonce cache [HPCPLANE_REDIS_URL]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line taking precedence."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        raise click.UsageError(str(error)) from error


def open_services(settings: Settings) -> Any:
    from hpcplane.wiring import build_services

    try:
        return build_services(settings)
    except SecretKeyMismatch as error:
        raise click.ClickException(str(error)) from None
    except DbError as error:
        raise click.ClickException(f"cannot reach the store ({error.__cause__})") from None


def print_key(issued: IssuedKey, as_json: bool) -> None:
    record = {
        "AccountId": issued.account_id,
        "AccessKeyId": issued.access_key_id,
        "AccessKeySecret": issued.access_key_secret,
    }
    if issued.user_name is not None:
        record["UserName"] = issued.user_name
    if as_json:
        click.echo(json.dumps(record))
    else:
        for name, value in record.items():
            click.echo(f"{name}: {value}")


def run(settings: Settings, action: Callable[[Any], None]) -> None:
    services = open_services(settings)
    try:
        action(services)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    finally:
        services.close()
