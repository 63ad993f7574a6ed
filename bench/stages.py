"""Where one ListTasks call's time goes: each stage of the pipeline timed alone, in one thread, no HTTP.

The load runs (bench/listtasks.py) say how fast; this says why. On a seeded store (10k tasks over 1,000
clusters, as the load runs use), each stage runs `--calls` times on its own, with fresh nonces and
random clusters, and the whole pipeline (`Gateway.handle`, everything but HTTP) runs as many times after
them. Each figure is this thread's CPU time per call (time.thread_time), so other processes on a
shared machine do not inflate it; PostgreSQL's own work is in its processes, not here. The stages are
those of the pipeline in order; their sum is close to the pipeline's figure, the
rest being the gateway's own work (audit record, logging context, dispatch).

`python -m bench.stages [--backends sqlite,postgres] [--calls N]`; `python -m bench` runs it too.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN, pg_drop, pg_reachable
from bench.seeding import Dataset, seed
from hpcplane import logs
from hpcplane.api.actions.tasks import read_list_tasks
from hpcplane.api.authn import expected_signature, raw_string_to_sign, read_credentials, string_to_sign
from hpcplane.api.gateway import Gateway
from hpcplane.api.params import Params
from hpcplane.api.protocol import RpcRequest, build_request, render
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.services.accounts import StoreKeyDirectory
from hpcplane.services.tasks import TaskQuery
from hpcplane.testing import sign_v1, sign_v3
from hpcplane.wiring import Services, build_services


@dataclass
class Stage:
    """One stage's cost per call, in microseconds."""

    backend: str
    name: str
    us_per_call: float


def _request(dataset: Dataset, rng: random.Random) -> RpcRequest:
    params = {"ClusterId": rng.choice(dataset.cluster_ids), "Archived": "true", "PageSize": "10"}
    path, _, query = sign_v1("ListTasks", params, dataset.access_key_id, dataset.secret).url_path.partition(
        "?"
    )
    return build_request(
        method="GET",
        path=path,
        raw_query=query.encode(),
        raw_headers=[(b"host", b"127.0.0.1")],
        body=b"",
        client_ip="127.0.0.1",
    )


def _request_v3(dataset: Dataset, rng: random.Random) -> RpcRequest:
    """The same call signed ACS3-HMAC-SHA256 (V3), as the Tea SDKs send it."""
    params = {"ClusterId": rng.choice(dataset.cluster_ids), "Archived": "true", "PageSize": "10"}
    signed = sign_v3("ListTasks", params, dataset.access_key_id, dataset.secret, host="127.0.0.1")
    path, _, query = signed.url_path.partition("?")
    return build_request(
        method="GET",
        path=path,
        raw_query=query.encode(),
        raw_headers=[(k.encode(), v.encode()) for k, v in signed.headers.items()],
        body=b"",
        client_ip="127.0.0.1",
    )


def _time(calls: int, run: Callable[[int], object]) -> float:
    for i in range(min(50, calls)):  # warm caches, prepared statements, pools
        run(i)
    # CPU time of this thread, not wall time: on a shared machine other processes' turns on the core are
    # not counted (PostgreSQL's own work, in its processes, is not either: see the load runs' db us/r).
    began = time.thread_time()
    for i in range(calls):
        run(i)
    return round((time.thread_time() - began) / calls * 1e6, 1)


def measure(services: Services, dataset: Dataset, calls: int) -> list[Stage]:
    rng = random.Random(11)
    requests = [_request(dataset, rng) for _ in range(calls + 50)]
    account = services.accounts.find(dataset.account_id)
    assert account is not None
    principal = Principal(account=account, access_key_id=dataset.access_key_id)
    queries = [read_list_tasks(Params(r.params)) for r in requests]
    now = services.clock.now()
    secret = dataset.secret

    def verify(i: int) -> object:
        """As the authenticator does it: the string to sign from the raw query when it is canonical."""
        creds = read_credentials(requests[i])
        sts = raw_string_to_sign(requests[i], creds) or string_to_sign(requests[i], creds)
        return expected_signature(creds, sts, secret)

    def page(i: int) -> dict[str, Any]:
        query: TaskQuery = queries[i]
        result = services.task_reader.list_tasks(principal, query)
        return {"TotalCount": result.total, "Tasks": [list(t) for t in result.tasks]}

    sample = page(0)
    gateway = Gateway(services)
    gateway_requests = [_request(dataset, rng) for _ in range(calls + 50)]
    v1_calls = iter(gateway_requests)
    v3_calls = iter([_request_v3(dataset, rng) for _ in range(calls + 50)])
    run_id = uuid.uuid4().hex[:6]
    keys = StoreKeyDirectory(services.db, services.box)
    stages = {
        "parse the query (build_request)": lambda i: _request_parse(requests[i]),
        "read and check the signature (HMAC-SHA1)": verify,
        "AccessKey and account (one read)": lambda i: keys.lookup(dataset.access_key_id),
        # What the authenticator reads now (without Redis): the key, its account and the nonce together.
        "AccessKey, account and nonce (one read)": (
            (lambda i: keys.lookup_with_nonce(dataset.access_key_id, f"{run_id}-k{i}", now))
            if hasattr(keys, "lookup_with_nonce")
            else None
        ),
        "nonce (memory and one read; written in batches)": lambda i: services.nonces.remember(
            dataset.access_key_id, f"{run_id}-{i}", now, 60
        ),
        "flow control (the AccessKey's token bucket)": lambda i: services.limiter.take(
            dataset.access_key_id, "ListTasks"
        ),
        "validate parameters": lambda i: read_list_tasks(Params(requests[i].params)),
        "ListTasks: checks, count and page (one read)": page,
        "render the JSON body (orjson)": lambda i: render(sample),
        # A fresh request for every call, the warm-up's included (calls + 50 of them): a replayed one
        # would be a cheap refusal.
        "the whole pipeline (Gateway.handle)": lambda i: _ok(gateway.handle(next(v1_calls), "bench")),
        "the whole pipeline, signed ACS3 (V3)": lambda i: _ok(gateway.handle(next(v3_calls), "bench")),
    }
    return [
        Stage(dataset.backend, name, float("nan") if run is None else _time(calls, run))
        for name, run in stages.items()
    ]


def _ok(answer: tuple[int, dict[str, object], object]) -> object:
    if answer[0] != 200:
        raise RuntimeError(f"the call was refused: {answer[1]}")
    return answer


def _request_parse(req: RpcRequest) -> RpcRequest:
    query = "&".join(f"{k}={v}" for k, v in req.query)
    return build_request(
        method="GET", path="/", raw_query=query.encode(), raw_headers=[], body=b"", client_ip="127.0.0.1"
    )


def run(backends: list[str], calls: int, pg_admin: str = PG_ADMIN) -> list[Stage]:
    logs.configure("warning")
    stages: list[Stage] = []
    with tempfile.TemporaryDirectory(prefix="hpcplane-stages-") as tmp:
        for backend in backends:
            if backend == "postgres" and (reason := pg_reachable(pg_admin)):
                print(f"stages on postgres skipped: {reason}")
                continue
            dataset = seed(backend, 10000, Path(tmp), pg_admin)
            try:
                services = build_services(
                    Settings(
                        home=dataset.home,
                        database_url=dataset.database_url,
                        worker=False,
                        demo=False,
                        rate_limit=1e9,  # checked on every call, never reached
                        rate_burst=10**9,
                    )
                )
                try:
                    stages += measure(services, dataset, calls)
                finally:
                    services.close()
            finally:
                if dataset.pg_name:
                    pg_drop(pg_admin, dataset.pg_name)
    return stages


def print_table(stages: list[Stage]) -> None:
    backends = list(dict.fromkeys(s.backend for s in stages))
    names = list(dict.fromkeys(s.name for s in stages))
    cost = {(s.backend, s.name): s.us_per_call for s in stages}
    print(
        f"\n{'stage of one ListTasks call (CPU us, one thread, no HTTP)':<56}"
        + "".join(f"{b:>10}" for b in backends)
    )
    for name in names:
        print(f"{name:<56}" + "".join(f"{cost.get((b, name), float('nan')):>10.0f}" for b in backends))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    args = parser.parse_args(argv)
    print_table(run([b for b in args.backends.split(",") if b], args.calls, args.pg_admin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
