"""Client load through the official SDKs: every call's start, end and outcome, and every accepted task."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support import sdkclients
from tests.support.sdkclients import SdkError

# Codes a client may see while the suite injects faults (the spec's table; Throttling.User with #6).
DOCUMENTED = frozenset({"DbError", "RedisError", "ServiceUnavailable", "Throttling.User"})
PASSWORD = "Hpc-plane-123"  # noqa: S105 (the simulated clusters' login password)
TRANSPORT = "transport"  # no HTTP answer: the API process was killed mid-call, or refused the connection


@dataclass(frozen=True)
class Record:
    """One call: when it started and ended (time.monotonic()) and its outcome ("ok", a code, transport)."""

    start: float
    end: float
    action: str
    outcome: str


@dataclass
class Accepted:
    task_id: str
    cluster_id: str
    at: float


@dataclass
class Load:
    """`threads` callers, each with its own account, creating clusters and reading, until stop()."""

    endpoints: Callable[[], list[str]]
    keys: list[dict[str, str]]
    pace: float = 0.05  # seconds a caller waits between calls
    create_every: int = 4  # one CreateCluster in this many calls
    timeout: float = 30.0  # the SDK's own timeout: far above any bound the suite checks
    records: list[Record] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)  # what "transport" was, by kind
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for index, key in enumerate(self.keys):
            thread = threading.Thread(target=self._caller, args=(index, key), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def call(
        self, endpoint: str, key: dict[str, str], action: str, **params: object
    ) -> dict[str, object] | None:
        kind = random.choice(("tea-v3", "legacy"))
        start = time.monotonic()
        body: dict[str, object] | None = None
        try:
            body = sdkclients.call(
                kind,
                endpoint,
                key["AccessKeyId"],
                key["AccessKeySecret"],
                action,
                params,
                timeout_s=self.timeout,
            )
            outcome = "ok"
        except SdkError as error:
            outcome = error.code
        except Exception as error:
            outcome = TRANSPORT
            with self._lock:
                self.transport_errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
        with self._lock:
            self.records.append(Record(start, time.monotonic(), action, outcome))
        return body

    def create(self, endpoint: str, key: dict[str, str], name: str) -> str | None:
        """One CreateCluster; its task is kept among the accepted ones. The cluster's id, or None."""
        body = self.call(
            endpoint,
            key,
            "CreateCluster",
            Name=name,
            Password=PASSWORD,
            EcsOrder={"Compute": {"Count": 1, "InstanceType": "ecs.c6.large"}},
        )
        if body is None:
            return None
        with self._lock:
            self.accepted.append(Accepted(str(body["TaskId"]), str(body["ClusterId"]), time.monotonic()))
        return str(body["ClusterId"])

    def adopt(self, other: Load) -> None:
        """Take `other`'s accepted tasks as this load's own (so the run waits for them to end)."""
        with other._lock:
            accepted = list(other.accepted)
        with self._lock:
            self.accepted.extend(accepted)

    def _caller(self, index: int, key: dict[str, str]) -> None:
        rng = random.Random(index)
        calls = 0
        clusters: list[str] = []
        while not self._stop.is_set():
            endpoints = self.endpoints()
            endpoint = rng.choice(endpoints)
            calls += 1
            if calls % self.create_every == 1:
                cluster_id = self.create(endpoint, key, f"chaos-{index}-{calls}")
                if cluster_id is not None:
                    clusters.append(cluster_id)
            elif clusters and calls % 2:
                self.call(endpoint, key, "ListTasks", ClusterId=rng.choice(clusters))
            else:
                self.call(endpoint, key, "ListClusters")
            self._stop.wait(self.pace)

    def between(self, start: float, end: float) -> list[Record]:
        """Calls that overlapped [start, end]."""
        with self._lock:
            return [r for r in self.records if r.end >= start and r.start <= end]

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the end of the first successful call that started after it."""
        with self._lock:
            ends = [r.end for r in self.records if r.outcome == "ok" and r.start >= moment]
        return min(ends) - moment if ends else None

    def outcomes(self) -> Counter[str]:
        with self._lock:
            return Counter(r.outcome for r in self.records)


@dataclass
class Paced(Load):
    """Open-loop callers: each calls `action` at `rate` calls a second on its own schedule, whatever the
    answers (a refused call does not slow the offered load down); CreateCluster creates clusters."""

    action: str = "ListClusters"
    rate: float = 1.0

    def _caller(self, index: int, key: dict[str, str]) -> None:
        rng = random.Random(1000 + index)
        interval = 1.0 / self.rate
        due = time.monotonic() + rng.uniform(0, interval)  # callers spread over the first interval
        calls = 0
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += interval
            calls += 1
            endpoint = rng.choice(self.endpoints())
            if self.action == "CreateCluster":
                self.create(endpoint, key, f"throttle-{index}-{calls}")
            else:
                self.call(endpoint, key, self.action)

    def span(self) -> float:
        """Seconds from the first call's start to the last call's end."""
        with self._lock:
            if not self.records:
                return 0.0
            return max(r.end for r in self.records) - min(r.start for r in self.records)

    def count(self, outcome: str) -> int:
        with self._lock:
            return sum(1 for r in self.records if r.outcome == outcome)
