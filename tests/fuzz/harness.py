"""The fuzz harness: signed calls generated from /openapi.json against a live `hpcplane serve`, checked for
no 5xx, the envelope or the documented success fields, no row changed by a refused call, no hang."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import select

from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import nodes
from tests.fuzz.strategies import Call, Operation, calls, operations
from tests.support.live import LiveServer
from tests.support.rawcalls import ENVELOPE, JSON_TYPE, Caller, Pairs, checksums

REQUEST_DEADLINE = 10.0  # seconds: a call that takes longer is a hang
_TRUST = {
    "Version": "1",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"RAM": []}}],
}


@dataclass
class Stats:
    """What a run tried and found."""

    requests: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self, label: str, actions: int) -> str:
        covered = len(self.by_action)
        return (
            f"{label}: {self.requests} requests, {covered}/{actions} actions covered "
            f"({len(self.accepted)} with a success), statuses {dict(sorted(self.statuses.items()))}, "
            f"{len(self.failures)} failures"
        )


@dataclass
class Target:
    """A live server, an account with clusters, nodes, a task and a role, and the calls' context values."""

    server: LiveServer
    caller: Caller
    ops: list[Operation]
    context: dict[str, list[str]]
    last: dict[str, str] | None = None  # the checksums after the previous call (nothing else writes)


def prepare(server: LiveServer, client: httpx.Client, folder: Path) -> Target:
    """Seed the account the calls use, and read the description the calls are generated from."""
    key = server.new_account("fuzz")
    acct = key["AccountId"]
    services = server.services
    # Two running clusters and a stopped one, so that Start* as well as Stop* calls can be accepted.
    clusters = [
        seed_cluster(
            services.db,
            services.clock,
            account_id=acct,
            region="cn-hangzhou",
            name=f"f{i}",
            status=status,
            computes=3,
        )
        for i, status in enumerate(("running", "running", "stopped"))
    ]
    with services.db.read() as conn:
        instances = [
            str(r[0]) for r in conn.execute(select(nodes.c.id).where(nodes.c.cluster_id.in_(clusters)))
        ]
    trust = folder / "trust.json"
    _TRUST["Statement"][0]["Principal"] = {"RAM": [f"acs:ram::{acct}:root"]}  # type: ignore[index]
    trust.write_text(json.dumps(_TRUST))
    arn = server.cli("ram", "create-role", acct, "fuzzer", "--trust", str(trust)).split("Arn: ")[1].strip()
    caller = Caller(server.endpoint, key, client)
    description = client.get(f"http://{server.endpoint}/openapi.json", timeout=30).json()
    created = caller.call("v3", "CreateCluster", {"Name": "fuzz-new", "Password": "Fuzz-pass1"}).json()
    context = {
        "ClusterId": [*clusters, str(created.get("ClusterId", "")), "ehpc-hz-missing"],
        "Instance.N.Id": instances,
        "TaskId": [str(created.get("TaskId", ""))],
        "Name": ["fuzz-a", "fuzz-b"],
        "Password": ["Fuzz-pass1"],
        "KeyPairName": ["kp"],
        "Count": ["1", "2"],
        "RoleArn": [arn],
        "RoleSessionName": ["fz-session"],
        "Filter": ['{"status":"running"}', '{"Status":"Stopped"}'],
        "Role": ["Compute", "Manager"],
    }
    return Target(server, caller, operations(description), context)


def check(target: Target, call: Call, stats: Stats) -> None:
    """Send one call and assert the harness' four properties."""
    db = target.server.services.db
    before = target.last or checksums(db)
    target.last = None
    params: Any = Pairs(call.pairs) if len(dict(call.pairs)) < len(call.pairs) else dict(call.pairs)
    req = target.caller.sign(call.kind, call.operation.action, params, version=call.operation.version)
    stats.requests += 1
    stats.by_action[call.operation.action] += 1
    started = time.monotonic()
    try:
        response = target.caller.send(req, timeout=REQUEST_DEADLINE)
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within {REQUEST_DEADLINE}s: {call.describe()}") from None
    assert time.monotonic() - started < REQUEST_DEADLINE, call.describe()
    status = response.status_code
    stats.statuses[status] += 1
    after = checksums(db)
    target.last = after
    assert status < 500, f"{status} {response.text[:300]}: {call.describe()}"
    assert response.headers.get("content-type") == JSON_TYPE, call.describe()
    body = response.json()
    assert isinstance(body, dict), call.describe()
    assert response.headers.get("x-acs-request-id") == body.get("RequestId"), call.describe()
    if status == 200:
        stats.accepted[call.operation.action] += 1
        extra = set(body) - call.operation.success_fields
        assert not extra, f"undocumented fields {sorted(extra)}: {call.describe()}"
        return
    assert set(body) == ENVELOPE, f"not the envelope {body}: {call.describe()}"
    assert after == before, f"refused ({body['Code']}) but changed rows: {call.describe()}"


def run(target: Target, seconds: float, stats: Stats, *, batch: int = 10) -> None:
    """Batches of hypothesis examples, one action after the other (so every action gets its share): one
    round over every action, then on until `seconds` have passed; a failing batch is shrunk to one call,
    recorded, and the run goes on."""

    def batch_of(op: Operation) -> Callable[[], None]:
        @settings(
            max_examples=batch,
            deadline=None,
            database=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @given(calls([op], target.context))
        def one(call: Call) -> None:
            check(target, call, stats)

        return one

    def attempt(one: Callable[[], None]) -> None:
        try:
            one()
        except Exception as error:  # a failure found: hypothesis has shrunk it to one call
            stats.failures.append(str(error).splitlines()[0][:500])

    batches = [batch_of(op) for op in target.ops]
    stop = time.monotonic() + seconds
    for one in batches:  # every action gets its first batch however slow the machine (xdist, load)
        attempt(one)
    while time.monotonic() < stop:
        for one in batches:
            attempt(one)
            if time.monotonic() >= stop:
                break


@contextmanager
def fuzz_server(home: Path, database_url: str | None) -> Iterator[LiveServer]:
    """A server without a worker: no row changes but those calls make, so checksums compare."""
    server = LiveServer(home, database_url, worker="false").start()
    try:
        yield server
    finally:
        server.stop()
