"""`hpcplane webhooks`: add, list, remove, deliveries (docs/webhooks.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from hpcplane.cli_common import run, settings_from, store_options
from hpcplane.services.webhooks import Webhooks
from hpcplane.store.webhooks import Webhook


def _service(services: Any) -> Webhooks:
    return Webhooks(services.db, services.box, services.clock)


def _record(hook: Webhook) -> dict[str, object]:
    return {
        "WebhookId": hook.id,
        "AccountId": hook.account_id,
        "Url": hook.url,
        "Events": [f"task.{kind}" for kind in hook.events] or ["*"],
        "DeliveredUpTo": hook.cursor.render(),
        "Failures": hook.failures,
        "NextAttempt": hook.next_attempt_at.isoformat(),
    }


@click.command("events-url")
@click.argument("cluster_id")
@click.option(
    "--access-key-id", required=True, envvar="HPCPLANE_ACCESS_KEY_ID", help="[HPCPLANE_ACCESS_KEY_ID]"
)
@click.option(
    "--access-key-secret",
    prompt=True,
    hide_input=True,
    envvar="HPCPLANE_ACCESS_KEY_SECRET",
    help="prompted for if not given [HPCPLANE_ACCESS_KEY_SECRET]",
)
@click.option("--endpoint", default="127.0.0.1:9000", show_default=True, help="host:port of the API")
@click.option("--https", is_flag=True, help="the API serves HTTPS")
def events_url(
    cluster_id: str, access_key_id: str, access_key_secret: str, endpoint: str, https: bool
) -> None:
    """Print a V1-signed /events URL for CLUSTER_ID (good for one connection: its nonce is then used)."""
    from hpcplane.testing import sign_v1

    signed = sign_v1("ListTasks", {"ClusterId": cluster_id}, access_key_id, access_key_secret)
    click.echo(f"{'https' if https else 'http'}://{endpoint}/events{signed.url_path[1:]}")


@click.group()
def webhooks() -> None:
    """Webhooks: task events POSTed to an account's URLs, signed with HMAC-SHA256."""


@webhooks.command("add")
@click.argument("account")
@click.argument("url")
@click.option(
    "--events",
    multiple=True,
    help="task.created, task.progress, task.ended (repeat or comma-separate; default: all)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@store_options
def webhooks_add(account: str, url: str, events: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Send ACCOUNT's (id or name) task events to URL from now on; print the id and signing secret."""

    def apply(services: Any) -> None:
        added = _service(services).add(account, url, events)
        record = {**_record(added.webhook), "Secret": added.secret}
        if as_json:
            click.echo(json.dumps(record))
            return
        for name in ("WebhookId", "Url", "Events", "Secret"):
            value = record[name]
            click.echo(f"{name}: {', '.join(value) if isinstance(value, list) else value}")
        click.echo("The secret is shown once; the receiver verifies X-Hpcplane-Signature with it.")

    run(settings_from(**options), apply)


@webhooks.command("list")
@click.argument("account", required=False)
@click.option("--json", "as_json", is_flag=True)
@store_options
def webhooks_list(account: str | None, as_json: bool, **options: Any) -> None:
    """List webhooks (of ACCOUNT, if given)."""

    def show(services: Any) -> None:
        rows = [_record(hook) for hook in _service(services).list_webhooks(account)]
        if as_json:
            click.echo(json.dumps(rows))
            return
        for row in rows:
            events = ",".join(row["Events"])  # type: ignore[arg-type]
            click.echo(
                f"{row['WebhookId']}  {row['AccountId']}  {row['Url']}  events={events}  "
                f"delivered-up-to={row['DeliveredUpTo']}  failures={row['Failures']}"
            )

    run(settings_from(**options), show)


@webhooks.command("remove")
@click.argument("webhook_id")
@store_options
def webhooks_remove(webhook_id: str, **options: Any) -> None:
    """Remove a webhook (nothing more is sent to it)."""

    def apply(services: Any) -> None:
        _service(services).remove(webhook_id)
        click.echo(f"removed {webhook_id}")

    run(settings_from(**options), apply)


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--failed", is_flag=True, help="only failed attempts")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@store_options
def webhooks_deliveries(webhook_id: str, failed: bool, limit: int, as_json: bool, **options: Any) -> None:
    """The newest delivery attempts of a webhook, failures included."""

    def show(services: Any) -> None:
        rows = [
            {
                "At": d.at.isoformat(),
                "EventId": d.event_id,
                "Attempt": d.attempt,
                "Ok": d.ok,
                "StatusCode": d.status_code,
                "Error": d.error,
            }
            for d in _service(services).deliveries(webhook_id, failed_only=failed, limit=limit)
        ]
        if as_json:
            click.echo(json.dumps(rows))
            return
        for row in rows:
            outcome = "ok" if row["Ok"] else "FAILED"
            detail = row["StatusCode"] if row["StatusCode"] is not None else row["Error"]
            click.echo(f"{row['At']}  {row['EventId']}  attempt {row['Attempt']}  {outcome}  {detail}")

    run(settings_from(**options), show)
