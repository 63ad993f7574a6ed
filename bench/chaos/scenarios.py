"""The faults: each injects one, waits for it to pass, and records what clients and the engine saw."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from tests.support.pathproxy import PathProxy
from tests.support.proxy import Proxy

from bench.chaos.load import DOCUMENTED, Load, Paced
from bench.chaos.observe import Observer, utcnow
from bench.chaos.report import Fault, Run
from bench.chaos.topology import Netns, Proc, Topology
from hpcplane.config import Settings
from hpcplane.store.db import DEADLINE_MARGIN


@dataclass(frozen=True)
class Profile:
    """How long each fault lasts and the settings every process runs with."""

    name: str
    lease: float
    db_timeout: float
    step: float
    freeze: float
    refuse: float
    cut: float
    redis: float
    exhaustion: float
    kills: int
    clients: int
    overload: float
    create_every: int = 8  # one CreateCluster in this many client calls


FULL = Profile("full", lease=10, db_timeout=5, step=0.4, freeze=12, refuse=10, cut=25, redis=6,
               exhaustion=10, kills=3, clients=4, overload=8)  # fmt: skip
SHORT = Profile("short", lease=4, db_timeout=2, step=0.2, freeze=5, refuse=3, cut=6, redis=3,
                exhaustion=4, kills=1, clients=3, overload=3)  # fmt: skip

# What a loaded 2-core machine may add to a call bounded by HPCPLANE_DB_TIMEOUT + DEADLINE_MARGIN:
# the HTTP round trip, the SDK, a scheduler that runs six other test suites.
CALL_SLACK = 2.0
# How long after its lease may expire a dead holder's task may wait for another worker's claim (or the
# first step after a fault may take): a few seconds, for a claim poll and a loaded machine.
TAKEOVER_SLACK = 5.0


@dataclass
class Context:
    """A running topology under load, and the run being recorded."""

    profile: Profile
    topology: Topology
    load: Load
    observer: Observer
    run: Run
    backend: str
    rng: random.Random
    last_fault_end: float = 0.0
    notes: list[str] = field(default_factory=list)

    def bound(self) -> float:
        return self.profile.db_timeout + DEADLINE_MARGIN + CALL_SLACK

    def record(
        self, fault: Fault, start: float, end: float, end_wall: datetime, *, stepped: bool = False
    ) -> Fault:
        """Fill in what clients saw over [start, end] and how recovery went; keep the fault.

        `stepped`: the caller measured fault.first_step itself (while it waited for takeovers)."""
        # Sessions a client already dropped linger on the server behind a frozen or cut path until
        # the path passes the close on: connections are counted again a little after the fault.
        self.observer.count_from(time.monotonic() + 3.0)
        fault.duration = round(end - start, 2)
        if not stepped:
            fault.first_step = self.first_step(end_wall, end)
        time.sleep(min(2.0, self.profile.lease / 4))  # let recovery happen before reading it
        overlapping = self.load.between(start, end)
        fault.codes = Counter(r.outcome for r in overlapping)
        fault.longest_call = max((r.end - r.start for r in overlapping), default=None)
        fault.recover = self.load.first_ok_after(end)
        self.last_fault_end = max(self.last_fault_end, end)
        unexpected = {c for c in fault.codes if c not in DOCUMENTED and c not in ("ok", "transport")}
        if unexpected:
            self.run.breach(f"{fault.name}: undocumented codes {sorted(unexpected)}")
        limit = self.profile.lease + TAKEOVER_SLACK
        late = [t for t in fault.takeover if t > limit]
        if late:
            self.run.breach(f"{fault.name}: {len(late)} takeovers later than lease + {TAKEOVER_SLACK} s")
        if fault.first_step is None or fault.first_step > limit:
            self.run.breach(f"{fault.name}: no step within lease + {TAKEOVER_SLACK} s of the fault's end")
        self.run.faults.append(fault)
        return fault

    def first_step(self, moment: datetime, since: float) -> float | None:
        return self.observer.wait_first_step(moment, since, self.profile.lease + TAKEOVER_SLACK)

    def watch_first_step(self, fault: Fault, moment: datetime, since: float) -> threading.Thread:
        """Measure fault.first_step in the background (join the thread before recording)."""

        def watch() -> None:
            fault.first_step = self.first_step(moment, since)

        thread = threading.Thread(target=watch)
        thread.start()
        return thread

    def check_bounded(self, fault: Fault) -> None:
        if fault.longest_call is not None and fault.longest_call > self.bound():
            self.run.breach(
                f"{fault.name}: a call took {fault.longest_call:.1f} s (bound {self.bound():.1f} s:"
                f" HPCPLANE_DB_TIMEOUT + {DEADLINE_MARGIN} + {CALL_SLACK} slack)"
            )


def wait_for_leases(ctx: Context, proc: Proc, limit: float = 10.0) -> dict[str, int]:
    """The tasks `proc` holds (with their lease tokens), once it holds some (or none after `limit`)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        held = ctx.observer.held_by(proc.pid)
        if held:
            return held
        time.sleep(0.05)
    return {}


def kill_worker(ctx: Context, proc: Proc) -> None:
    """SIGKILL a worker that holds leases while another worker runs; start it again at once (and wait
    until it runs, so the next fault finds every worker up); time each takeover."""
    for other in ctx.topology.of("worker"):
        if other is not proc and other.alive():
            other.wait_ready()  # a worker still starting takes nothing over: that would time its start
    wait_for_leases(ctx, proc)
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    pid = proc.pid
    proc.kill()
    end_wall = utcnow()
    held = ctx.observer.held_by(pid)  # what the dead worker still holds: only a takeover frees these
    fault = Fault("SIGKILL worker", ctx.backend, note=f"{len(held)} leases held")
    stepping = ctx.watch_first_step(fault, end_wall, start)
    took: list[float] = []
    # Started again meanwhile, as a supervisor would; the takeover is the other worker's.
    restart = threading.Thread(target=lambda: took.append(proc.restart()))
    restart.start()
    fault.takeover = ctx.observer.wait_taken_over(held, start, ctx.profile.lease * 3)
    restart.join()
    stepping.join()
    if took:
        fault.note += f"; restarted in {took[0]:.1f} s"
    else:
        ctx.run.breach(f"SIGKILL worker: {proc.name} did not start again: {proc.tail(3)}")
    ctx.record(fault, start, start, end_wall, stepped=True)


def kill_api(ctx: Context, proc: Proc) -> None:
    """SIGKILL an API process mid-load, then start it again."""
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    proc.kill()
    fault = Fault("SIGKILL API process", ctx.backend)
    took = proc.restart()
    fault.note = f"restarted in {took:.1f} s"
    ctx.record(fault, start, time.monotonic(), utcnow())


def kill_serve(ctx: Context, proc: Proc) -> None:
    """SIGKILL the embedded server (API and worker in one process), then start it again; its tasks'
    takeover is timed from the moment the new process answers (nothing else could take them before)."""
    wait_for_leases(ctx, proc)
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    pid = proc.pid
    proc.kill()
    held = ctx.observer.held_by(pid)
    fault = Fault("SIGKILL serve (API+worker)", ctx.backend)
    took = proc.restart()
    end, end_wall = time.monotonic(), utcnow()
    fault.note = f"{len(held)} leases held; restarted in {took:.1f} s, takeover timed from then"
    stepping = ctx.watch_first_step(fault, end_wall, end)
    fault.takeover = ctx.observer.wait_taken_over(held, end, ctx.profile.lease * 3)
    stepping.join()
    ctx.record(fault, start, end, end_wall, stepped=True)


def db_refuse(ctx: Context, proxy: PathProxy) -> None:
    """The path to PostgreSQL refuses connections (and resets the open ones), then comes back."""
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    proxy.refuse()
    time.sleep(ctx.profile.refuse)
    proxy.restore()
    end = time.monotonic()
    ctx.check_bounded(ctx.record(Fault("database refuses", ctx.backend), start, end, utcnow()))


def db_freeze(ctx: Context, proxy: PathProxy) -> None:
    """The path to PostgreSQL freezes (SIGSTOP of the proxy): open and new connections stop answering."""
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    proxy.freeze()
    time.sleep(ctx.profile.freeze)
    proxy.thaw()
    end = time.monotonic()
    ctx.check_bounded(ctx.record(Fault("database path frozen", ctx.backend), start, end, utcnow()))


def redis_down(ctx: Context, proxy: PathProxy) -> None:
    """Redis refuses, then (after it came back) its path freezes."""
    ctx.observer.count_from(float("inf"))
    for name, stop, resume in (
        ("Redis refuses", proxy.refuse, proxy.restore),
        ("Redis path frozen", proxy.freeze, proxy.thaw),
    ):
        start = time.monotonic()
        stop()
        time.sleep(ctx.profile.redis)
        resume()
        end = time.monotonic()
        ctx.check_bounded(ctx.record(Fault(name, ctx.backend), start, end, utcnow()))


def exhaustion(ctx: Context, admin_dsn: str, role: str, limit: int) -> None:
    """PostgreSQL has fewer connections to give than the processes want ("too many connections"): the
    role's CONNECTION LIMIT drops and its sessions are ended, as after a restart under contention."""
    ctx.observer.count_from(float("inf"))
    start = time.monotonic()
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT {limit}')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        time.sleep(ctx.profile.exhaustion)
        admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
    end = time.monotonic()
    fault = Fault("connections exhausted", ctx.backend, note=f"role limited to {limit}")
    ctx.check_bounded(ctx.record(fault, start, end, utcnow()))


def network_cut(
    ctx: Context, db_host: str, db_port: int, database_url_for: Callable[[str, int], str]
) -> None:
    """A worker in its own network namespace loses its link for longer than the lease."""
    why = Netns.available()
    if why is not None:
        ctx.run.faults.append(Fault("network cut (netns)", ctx.backend, skipped=why))
        return
    netns = Netns(1)
    proxy: Proxy | None = None
    proc: Proc | None = None
    try:
        netns.create()
        proxy = Proxy(db_host, db_port, host=netns.host_ip, keepalive=2)
        proc = ctx.topology.worker(
            "worker-netns", database_url=database_url_for(netns.host_ip, proxy.port), prefix=netns.prefix()
        )
        wait_for_leases(ctx, proc)
        ctx.observer.count_from(float("inf"))
        start = time.monotonic()
        netns.cut()
        time.sleep(0.5)  # a commit already on the wire lands; nothing after it can
        held = ctx.observer.held_by(proc.pid)
        fault = Fault("network cut (netns)", ctx.backend, note=f"{len(held)} leases held")
        fault.takeover = ctx.observer.wait_taken_over(held, start, ctx.profile.cut)
        time.sleep(max(0.0, ctx.profile.cut - (time.monotonic() - start)))
        netns.mend()
        end = time.monotonic()
        name = next((n for n in ctx.observer.idle_in_transaction if n.endswith(f" {proc.pid}")), None)
        idle = ctx.observer.idle_in_transaction.get(name, 0.0) if name else 0.0
        limit = Settings(
            lease_seconds=ctx.profile.lease, db_timeout=ctx.profile.db_timeout
        ).idle_in_transaction
        fault.note += f"; its sessions idle in a transaction at most {idle:.1f} s (limit {limit:.1f} s)"
        if idle > limit + 1.5:
            ctx.run.breach(f"network cut: a session stayed idle in a transaction {idle:.1f} s")
        ctx.record(fault, start, end, utcnow())
        if len(fault.takeover) < len(held):
            ctx.run.breach(
                f"network cut: {len(held) - len(fault.takeover)} tasks not taken over during the cut"
            )
    finally:
        if proc is not None:
            proc.stop()
            ctx.topology.procs.remove(proc)
        if proxy is not None:
            proxy.close()
        netns.delete()


def overload(ctx: Context, proc: Proc, callers: int) -> None:
    """`callers` concurrent clients on one API process that admits a third as many calls at once."""
    load = Load(lambda: [proc.endpoint], ctx.load.keys[:1] * callers, pace=0.0, create_every=10**9)
    start = time.monotonic()
    load.start()
    time.sleep(ctx.profile.overload)
    load.stop()
    seconds = time.monotonic() - start
    outcomes = load.outcomes()
    total = sum(outcomes.values())
    ok = outcomes.get("ok", 0)
    ctx.run.goodput = (
        f"{ok / seconds:.0f} ok calls/s of {total / seconds:.0f} offered/s with {callers} clients"
        f" on a process admitting {callers // 3} ({outcomes.get('ServiceUnavailable', 0)} ServiceUnavailable)"
    )
    ctx.run.codes.update(outcomes)
    fault = Fault("overload (3x admission)", ctx.backend, codes=outcomes, duration=round(seconds, 2))
    unexpected = {c for c in outcomes if c not in DOCUMENTED and c != "ok"}
    if unexpected:
        ctx.run.breach(f"overload: unexpected outcomes {sorted(unexpected)}")
    ctx.run.faults.append(fault)


# The throttle scenario's quotas (#6): per AccessKey, and for CreateCluster per AccessKey on top.
THROTTLE_RATE, THROTTLE_BURST = 8, 8
THROTTLE_CREATE_RATE, THROTTLE_CREATE_BURST = 1, 2
# Open-loop callers, each waiting for its answer: enough that the offered rate holds at 3x even when
# a loaded machine makes a call take half a second.
THROTTLE_LIST_CALLERS, THROTTLE_CREATE_CALLERS = 12, 2


def start_throttled(topology: Topology, name: str) -> Proc:
    """An API process with the throttle scenario's quotas (not waited for: see throttle())."""
    return topology.api(
        name,
        wait=False,
        rate_limit=str(THROTTLE_RATE),
        rate_burst=str(THROTTLE_BURST),
        action_rate_limits=f"CreateCluster={THROTTLE_CREATE_RATE}/{THROTTLE_CREATE_BURST}",
    )


def throttle(ctx: Context, procs: list[Proc], key: dict[str, str], warm: dict[str, str]) -> None:
    """3x the throttle quota (#6) from one AccessKey over two API processes whose token buckets are
    shared in Redis (HPCPLANE_RATE_LIMIT / HPCPLANE_RATE_BURST / HPCPLANE_ACTION_RATE_LIMITS, see
    start_throttled()): ListClusters and CreateCluster offered open-loop at three times their quotas.
    Goodput is the calls answered; they stay within what the quotas allow (burst + rate x time) over
    both processes together, the quota stays usable under the overload, and the refused calls get
    Throttling.User."""
    endpoints = [p.endpoint for p in procs]
    for proc in procs:
        proc.wait_ready()
        # A process's first calls are slow (connections, caches): made from another key, not counted.
        ctx.load.call(proc.endpoint, warm, "ListClusters")
        ctx.load.create(proc.endpoint, warm, f"throttle-warm-{proc.name}")
    lists = 3 * (THROTTLE_RATE - THROTTLE_CREATE_RATE)  # with the creates: 3x the per-key quota
    creates = 3 * THROTTLE_CREATE_RATE
    loads = [
        Paced(lambda: endpoints, [key] * THROTTLE_LIST_CALLERS, rate=lists / THROTTLE_LIST_CALLERS),
        Paced(
            lambda: endpoints,
            [key] * THROTTLE_CREATE_CALLERS,
            action="CreateCluster",
            rate=creates / THROTTLE_CREATE_CALLERS,
        ),
    ]
    for load in loads:
        load.start()
    time.sleep(ctx.profile.overload)
    for load in loads:
        load.stop()
        ctx.load.adopt(load)  # the tasks created are the run's: they must end like any other
    seconds = max(0.001, *(load.span() for load in loads))
    outcomes = loads[0].outcomes() + loads[1].outcomes()
    offered, ok = sum(outcomes.values()), outcomes.get("ok", 0)
    created = loads[1].count("ok")
    allowed = THROTTLE_BURST + THROTTLE_RATE * seconds
    allowed_creates = THROTTLE_CREATE_BURST + THROTTLE_CREATE_RATE * seconds
    ctx.run.throttle = (
        f"{ok / seconds:.1f} ok calls/s of {offered / seconds:.1f} offered/s"
        f" ({offered / seconds / THROTTLE_RATE:.1f}x the quota) from one AccessKey over two"
        f" API processes (quota {THROTTLE_RATE}/s, burst {THROTTLE_BURST}: {allowed:.0f} calls allowed"
        f" in {seconds:.1f} s, {ok} answered; CreateCluster {THROTTLE_CREATE_RATE}/s burst"
        f" {THROTTLE_CREATE_BURST}: {created} of {sum(loads[1].outcomes().values())} created,"
        f" {allowed_creates:.0f} allowed;"
        f" {outcomes.get('Throttling.User', 0)} Throttling.User)"
    )
    ctx.run.codes.update(outcomes)
    fault = Fault("3x throttle quota", ctx.backend, codes=outcomes, duration=round(seconds, 2))
    fault.note = f"2 API processes sharing Redis buckets, {offered} calls offered"
    unexpected = {c for c in outcomes if c not in DOCUMENTED and c != "ok"}
    if unexpected:
        ctx.run.breach(f"3x throttle quota: unexpected outcomes {sorted(unexpected)}")
    if not outcomes.get("Throttling.User"):
        ctx.run.breach("3x throttle quota: no call was throttled")
    # Slack for the clocks (Redis's against this process's) and a call in flight at either end.
    if ok > allowed * 1.05 + 2 or created > allowed_creates * 1.05 + 1:
        ctx.run.breach(
            f"3x throttle quota: {ok} calls ({created} CreateCluster) answered where the quotas allow"
            f" {allowed:.0f} ({allowed_creates:.0f})"
        )
    if ok < 0.5 * min(offered, allowed):
        ctx.run.breach(f"3x throttle quota: goodput collapsed ({ok} answered of {allowed:.0f} allowed)")
    ctx.run.faults.append(fault)
