"""Signed raw requests (V1 and V3) over one HTTP client, and snapshots of every table of a store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from hpcplane import API_VERSION
from hpcplane.store.db import Database
from hpcplane.store.tables import metadata
from hpcplane.testing import SignedRequest, sign_v1, sign_v3

ENVELOPE = {"RequestId", "HostId", "Code", "Message", "Recommend"}
JSON_TYPE = "application/json;charset=utf-8"
# Tables a rejected request changes by design: the audit trail and the nonce replay cache.
CHANGED_BY_DESIGN = ("audit_log", "nonces")


class Pairs:
    """Parameters as an ordered list of pairs, repeats allowed: what a Mapping cannot carry."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


@dataclass
class Caller:
    """Signs and sends raw requests to one server with one AccessKey."""

    endpoint: str
    key: Mapping[str, str]
    client: httpx.Client

    def sign(
        self, kind: str, action: str, params: Mapping[str, str] | Pairs, *, version: str = API_VERSION
    ) -> SignedRequest:
        key_id, secret = self.key["AccessKeyId"], self.key["AccessKeySecret"]
        if kind == "v1":
            assert not isinstance(params, Pairs)
            return sign_v1(action, params, key_id, secret, version=version)
        return sign_v3(action, params, key_id, secret, host=self.endpoint, version=version)  # type: ignore[arg-type]

    def send(self, req: SignedRequest, *, timeout: float = 15.0) -> httpx.Response:
        return self.client.request(
            req.method,
            f"http://{self.endpoint}{req.url_path}",
            headers=req.headers,
            content=req.body,
            timeout=timeout,
        )

    def call(
        self, kind: str, action: str, params: Mapping[str, str] | Pairs, *, version: str = API_VERSION
    ) -> httpx.Response:
        return self.send(self.sign(kind, action, params, version=version))


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON error envelope of a response (asserting it is one, with the RequestId header)."""
    assert response.headers.get("content-type") == JSON_TYPE, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE, body
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    return body


def rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as conn:
        for name, table in metadata.tables.items():
            order = list(table.primary_key.columns) or list(table.columns)
            found[name] = [tuple(row) for row in conn.execute(select(table).order_by(*order))]
    return found


def checksums(db: Database, *, skip: Iterable[str] = CHANGED_BY_DESIGN) -> dict[str, str]:
    """A digest of each table's rows (every column, in primary-key order), but those that change by
    design; one plain statement per table on the bare driver, as the fuzz harness runs it per call."""
    left_out = set(skip)
    digests = {}
    with db.driver() as driver:
        for name, table in metadata.tables.items():
            if name in left_out:
                continue
            order = ", ".join(c.name for c in (list(table.primary_key.columns) or list(table.columns)))
            found = driver.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()
            digests[name] = hashlib.sha256(repr([tuple(r) for r in found]).encode()).hexdigest()
    return digests
