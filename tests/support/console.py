"""The console's HTTP API as the page calls it, an SSE reader, and the world the console tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import clusters
from tests.support.live import LiveServer
from tests.support.policies import allow, document

XSS_NAME = '<img src=x onerror="window.__xss=1">'
XSS_DESCRIPTION = "<script>window.__xss=2</script><b>bold?</b>"


class ConsoleClient:
    """A signed-in console session over HTTP: the cookie jar and the CSRF token, as app.js keeps them."""

    def __init__(self, endpoint: str) -> None:
        self.http = httpx.Client(base_url=f"http://{endpoint}", headers={"X-Hpcplane-Console": "1"})
        self.csrf = ""

    def sign_in(self, key: dict[str, str]) -> httpx.Response:
        response = self.http.post(
            "/console/api/session",
            json={"AccessKeyId": key["AccessKeyId"], "AccessKeySecret": key["AccessKeySecret"]},
        )
        if response.status_code == 200:
            self.csrf = response.json()["Csrf"]
        return response

    def call(self, action: str, **params: object) -> httpx.Response:
        return self.http.post(
            "/console/api/call",
            json={"Action": action, "Params": params},
            headers={"X-CSRF-Token": self.csrf},
        )

    def close(self) -> None:
        self.http.close()


@dataclass
class SseEvent:
    id: str
    type: str
    data: dict[str, Any]


def read_events(response: httpx.Response) -> Iterator[SseEvent]:
    """Parse a text/event-stream response as it arrives."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield SseEvent(
                    fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@dataclass
class World:
    """An account with two clusters (one named and described with XSS attempts) and a RAM user whose
    policy reaches only the first cluster."""

    root: dict[str, str]
    user: dict[str, str]
    mine: str  # the RAM user's cluster
    other: str  # named and described with markup


def make_world(server: LiveServer, tmp: Path, computes: int = 1) -> World:
    root = server.new_account("acme")
    services = server.services
    mine = seed_cluster(
        services.db, services.clock, account_id=root["AccountId"], region="cn-hangzhou", name="alpha",
        computes=computes,
    )  # fmt: skip
    other = seed_cluster(
        services.db, services.clock, account_id=root["AccountId"], region="cn-hangzhou", name=XSS_NAME
    )
    with services.db.write() as conn:
        conn.execute(update(clusters).where(clusters.c.id == other).values(description=XSS_DESCRIPTION))
    server.cli("ram", "create-user", "acme", "dana")
    user: dict[str, str] = json.loads(server.cli("keys", "create", "acme", "--user", "dana", "--json"))
    arn = f"acs:ehpc:cn-hangzhou:{root['AccountId']}:cluster/{mine}"
    policy = tmp / "dana.json"
    policy.write_text(
        document(
            allow(Action=["ehpc:ListClusters", "ehpc:ListTasks"], Resource="*"),
            allow(Action="ehpc:*", Resource=arn),
        )
    )
    server.cli("ram", "create-policy", "acme", "dana-alpha", "--document", str(policy))
    server.cli("ram", "attach-policy", "acme", "dana-alpha", "--user", "dana")
    return World(root, user, mine, other)
