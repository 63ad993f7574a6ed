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
