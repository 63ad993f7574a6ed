"""The command line: serve, worker, migrate, accounts, keys, ram, sts, audit, call, task, control, doctor,
node-shell, webhooks, events-url."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from hpcplane import __version__, cli_call, cli_control, cli_local, cli_ram, cli_webhooks
from hpcplane.cli_common import open_services, print_key, run, settings_from, store_options
from hpcplane.domain.errors import DbError


@click.group()
@click.version_option(__version__, prog_name="hpcplane")
def main() -> None:
    """hpcplane: a control plane that speaks the Alibaba Cloud E-HPC API (2018-04-12)."""


@main.command()
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1) [HPCPLANE_HOST]")
@click.option("--port", type=int, default=None, help="port to listen on (default 9000) [HPCPLANE_PORT]")
@store_options
@click.option("--worker/--no-worker", default=None, help="run a task worker in-process (default: yes)")
@click.option(
    "--provider",
    type=click.Choice(["simulated", "local"]),
    default=None,
    help="what clusters are: simulated, or real Slurm on this machine [HPCPLANE_PROVIDER]",
)
@click.option("--sim-step-seconds", type=float, default=None, help="simulated step duration (0 for tests)")
@click.option("--ssl-certfile", default=None, help="serve HTTPS with this PEM certificate")
@click.option("--ssl-keyfile", default=None, help="the certificate's PEM private key")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("--log-format", type=click.Choice(["console", "json"]), default=None)
def serve(**options: Any) -> None:
    """Migrate the store, then serve the API (with a task worker unless --no-worker)."""
    from hpcplane.server import run_server

    settings = settings_from(**options)
    cli_local.require_provider(settings)
    run_server(settings, open_services(settings))


@main.command()
@store_options
@click.option("--concurrency", "worker_concurrency", type=int, default=None, help="tasks run at once")
@click.option(
    "--provider",
    type=click.Choice(["simulated", "local"]),
    default=None,
    help="what clusters are: simulated, or real Slurm on this machine [HPCPLANE_PROVIDER]",
)
@click.option("--sim-step-seconds", type=float, default=None, help="simulated step duration")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("--log-format", type=click.Choice(["console", "json"]), default=None)
def worker(**options: Any) -> None:
    """Run task workers only, against the given store, until SIGINT or SIGTERM."""
    from hpcplane.server import run_worker

    settings = settings_from(**options)
    cli_local.require_provider(settings)
    run_worker(settings, open_services(settings))


@main.command()
@store_options
def migrate(**options: Any) -> None:
    """Apply the database migrations (serve also does this at start)."""
    from hpcplane.store import migrate as migrations
    from hpcplane.wiring import open_database

    settings = settings_from(**options)
    db = open_database(settings)
    try:
        migrations.upgrade(db)
        click.echo(f"database at revision {migrations.current_revision(db)}")
    except DbError as error:
        raise click.ClickException(f"cannot reach the store ({error.__cause__})") from None
    finally:
        db.dispose()


@main.group()
def accounts() -> None:
    """Accounts (tenants) and whether E-HPC is enabled for them."""


@accounts.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@store_options
def accounts_create(name: str, as_json: bool, **options: Any) -> None:
    """Create an account with E-HPC enabled and one AccessKey; print AccountId, AccessKeyId, secret."""
    run(settings_from(**options), lambda s: print_key(s.accounts.create_account(name), as_json))


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True)
@store_options
def accounts_list(as_json: bool, **options: Any) -> None:
    """List accounts."""

    def show(services: Any) -> None:
        rows = [
            {"AccountId": a.id, "Name": a.name, "EhpcEnabled": a.ehpc_enabled}
            for a in services.accounts.list_accounts()
        ]
        if as_json:
            click.echo(json.dumps(rows))
        for row in [] if as_json else rows:
            click.echo(
                f"{row['AccountId']}  {row['Name']}  ehpc={'enabled' if row['EhpcEnabled'] else 'disabled'}"
            )

    run(settings_from(**options), show)


def _service_switch(enabled: bool) -> Callable[..., None]:
    def command(account: str, **options: Any) -> None:
        def apply(services: Any) -> None:
            changed = services.accounts.set_service(account, enabled)
            click.echo(f"E-HPC {'enabled' if enabled else 'disabled'} for {changed.name} ({changed.id})")

        run(settings_from(**options), apply)

    return command


accounts.command("disable-service", help="Disable E-HPC for ACCOUNT (id or name): calls get NotEnabled.")(
    store_options(click.argument("account")(_service_switch(False)))
)
accounts.command("enable-service", help="Enable E-HPC for ACCOUNT (id or name).")(
    store_options(click.argument("account")(_service_switch(True)))
)


@main.group()
def keys() -> None:
    """AccessKeys of accounts and of their RAM users."""


@keys.command("create")
@click.argument("account")
@click.option("--user", default=None, help="issue the key to this RAM user of the account")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@store_options
def keys_create(account: str, user: str | None, as_json: bool, **options: Any) -> None:
    """Create an AccessKey for ACCOUNT (id or name); print AccessKeyId and AccessKeySecret."""
    run(settings_from(**options), lambda s: print_key(s.accounts.create_key(account, user), as_json))


@keys.command("disable")
@click.argument("access_key_id")
@store_options
def keys_disable(access_key_id: str, **options: Any) -> None:
    """Disable an AccessKey: calls signed with it get InvalidAccessKeyId.Inactive."""

    def apply(services: Any) -> None:
        services.accounts.disable_key(access_key_id)
        click.echo(f"{access_key_id} disabled")

    run(settings_from(**options), apply)


@keys.command("enable")
@click.argument("access_key_id")
@store_options
def keys_enable(access_key_id: str, **options: Any) -> None:
    """Enable a disabled AccessKey again."""

    def apply(services: Any) -> None:
        services.accounts.enable_key(access_key_id)
        click.echo(f"{access_key_id} enabled")

    run(settings_from(**options), apply)


@keys.command("list")
@click.argument("account")
@store_options
def keys_list(account: str, **options: Any) -> None:
    """List the AccessKeys of ACCOUNT (secrets are not shown)."""

    def show(services: Any) -> None:
        for key in services.accounts.list_keys(account):
            owner = f"user {key.user_name}" if key.user_name else "account"
            click.echo(f"{key.id}  {key.status.value}  {owner}")

    run(settings_from(**options), show)


main.add_command(cli_ram.ram)
main.add_command(cli_ram.sts)
main.add_command(cli_ram.audit)
main.add_command(cli_local.doctor)
main.add_command(cli_local.node_shell)
main.add_command(cli_webhooks.webhooks)
main.add_command(cli_webhooks.events_url)
main.add_command(cli_call.call)
main.add_command(cli_call.task)
main.add_command(cli_control.control)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
