"""Webhooks: an account's URLs, and the deliverer that POSTs each task event to them, signed.

The outbox is task_events itself (written in each change's transaction); a webhook's cursor says what it
has been sent. The deliverer leases a due webhook, sends its next events in order, moves the cursor past
each one answered with a 2xx, and on a failure records it and waits (exponential backoff with jitter)
before sending that same event again: at least once, in order, each with an idempotency key
(docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import structlog

from hpcplane import __version__, ids
from hpcplane.clock import Clock
from hpcplane.domain.errors import DbError
from hpcplane.services.accounts import AccountError
from hpcplane.store import accounts as account_store
from hpcplane.store import events as event_store
from hpcplane.store import webhooks as store
from hpcplane.store.db import Database, Driver
from hpcplane.store.events import TaskEvent
from hpcplane.store.secrets import SecretBox
from hpcplane.store.webhooks import Delivery, Webhook

log = structlog.get_logger("hpcplane.webhooks")

SIGNATURE_HEADER = "X-Hpcplane-Signature"
TIMESTAMP_HEADER = "X-Hpcplane-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256, under the webhook's secret, of the timestamp, a dot and the body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def kinds_of(names: tuple[str, ...]) -> tuple[str, ...]:
    """`task.created`, `created` ...: the event kinds, checked; empty means every kind."""
    kinds = []
    for name in names:
        for part in name.split(","):
            kind = part.strip().removeprefix("task.")
            if not kind:
                continue
            if kind not in event_store.KINDS:
                known = ", ".join(f"task.{k}" for k in event_store.KINDS)
                raise AccountError(f"unknown event {part.strip()!r} (known: {known})")
            kinds.append(kind)
    return tuple(dict.fromkeys(kinds))


@dataclass(frozen=True, slots=True)
class AddedWebhook:
    webhook: Webhook
    secret: str  # shown once, at creation


class Webhooks:
    """Adding, listing and removing webhooks, and reading their deliveries (the CLI's use cases)."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    def add(self, account_ref: str, url: str, events: tuple[str, ...] = ()) -> AddedWebhook:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AccountError("a webhook URL is http:// or https:// with a host")
        kinds = kinds_of(events)
        secret = "whsec_" + secrets.token_urlsafe(24)
        now = self._clock.now()
        with self._db.write() as conn:
            account = account_store.find_account(conn, account_ref)
            if account is None:
                raise AccountError(f"no account {account_ref!r}")
            hook = Webhook(
                id="wh-" + ids.request_id().replace("-", "")[:20].lower(),
                account_id=account.id,
                url=url,
                events=kinds,
                secret_enc=self._box.seal(secret),
                cursor=event_store.last_cursor(Driver.within(conn)),  # from now on
                failures=0,
                next_attempt_at=now,
                created_at=now,
            )
            store.add(conn, hook)
        return AddedWebhook(hook, secret)

    def list_webhooks(self, account_ref: str | None = None) -> list[Webhook]:
        with self._db.read() as conn:
            account_id = None
            if account_ref is not None:
                account = account_store.find_account(conn, account_ref)
                if account is None:
                    raise AccountError(f"no account {account_ref!r}")
                account_id = account.id
            return store.list_webhooks(conn, account_id)

    def remove(self, webhook_id: str) -> None:
        with self._db.write() as conn:
            if not store.remove(conn, webhook_id):
                raise AccountError(f"no webhook {webhook_id!r}")

    def deliveries(self, webhook_id: str, *, failed_only: bool = False, limit: int = 50) -> list[Delivery]:
        with self._db.read() as conn:
            if store.get(conn, webhook_id) is None:
                raise AccountError(f"no webhook {webhook_id!r}")
            return store.deliveries(conn, webhook_id, failed_only=failed_only, limit=limit)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer that is not 2xx: a failed delivery


_OPENER = urllib.request.build_opener(_NoRedirect)


class Deliverer:
    """Sends due webhooks' events; run by worker processes, any number at once."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        clock: Clock,
        *,
        owner: str,
        backoff: float,
        backoff_max: float,
        timeout: float,
        poll_interval: float = 0.5,
        batch: int = 50,
    ) -> None:
        self._db = db
        self._box = box
        self._clock = clock
        self._owner = owner
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._timeout = timeout
        self._poll = poll_interval
        self._batch = batch
        self._lease = timedelta(seconds=max(60.0, timeout * 3))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hpcplane-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except DbError as error:
                log.warning("webhook delivery paused: store unavailable", cause=repr(error.__cause__))
                sent = 0
            if not sent:
                self._stop.wait(self._poll)

    def run_once(self) -> int:
        """One pass: claim due webhooks and send what they have pending; returns the POSTs made."""
        with self._db.write() as conn:
            now = self._clock.now()
            hooks = store.claim(
                conn,
                owner=self._owner,
                now=now,
                lease_until=now + self._lease,
                limit=4,
                postgres=self._db.is_postgres,
            )
        return sum(self._drain(hook) for hook in hooks)

    def _drain(self, hook: Webhook) -> int:
        with self._db.driver() as driver:
            pending = event_store.read_after(
                driver, hook.cursor, account_id=hook.account_id, limit=self._batch
            )
        secret = self._box.open(hook.secret_enc)
        sent = 0
        cursor = hook.cursor
        failures = hook.failures
        for event in pending:
            if hook.events and event.kind not in hook.events:
                cursor = event.cursor
                continue
            sent += 1
            ok, status, error = self._post(hook, event, secret, failures + 1)
            with self._db.write() as conn:
                store.record_delivery(
                    conn,
                    Delivery(
                        0, hook.id, event.cursor.render(), failures + 1, ok, status, error, self._clock.now()
                    ),
                )
                if not ok:
                    failures += 1
                    store.delivered(conn, hook.id, self._owner, cursor)
                    store.release(
                        conn, hook.id, self._owner, self._clock.now() + self._delay(failures), failures
                    )
                    return sent
                if not store.delivered(conn, hook.id, self._owner, event.cursor):
                    return sent  # the lease was taken over; its new holder goes on
            cursor = event.cursor
            failures = 0
        with self._db.write() as conn:
            store.delivered(conn, hook.id, self._owner, cursor)
            store.release(conn, hook.id, self._owner, self._clock.now(), None)
        return sent

    def _delay(self, failures: int) -> timedelta:
        """Exponential backoff with jitter: up to base x 2^(failures-1), capped, at least half of it."""
        ceiling = min(self._backoff_max, self._backoff * 2 ** min(failures - 1, 30))
        return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))

    def _post(
        self, hook: Webhook, event: TaskEvent, secret: str, attempt: int
    ) -> tuple[bool, int | None, str | None]:
        body = json.dumps(event.body(), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 (the scheme was checked to be http or https)
            hook.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"hpcplane-webhooks/{__version__}",
                "X-Hpcplane-Event-Id": event.cursor.render(),
                "X-Hpcplane-Event-Type": f"task.{event.kind}",
                "X-Hpcplane-Webhook-Id": hook.id,
                "X-Hpcplane-Delivery-Attempt": str(attempt),
                "Idempotency-Key": f"{hook.id}:{event.cursor.render()}",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(secret, timestamp, body),
            },
        )
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                return True, int(response.status), None
        except urllib.error.HTTPError as error:
            return False, int(error.code), f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return False, None, f"{type(error).__name__}: {reason}"[:500]
