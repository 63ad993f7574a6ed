"""Prometheus metrics, shared by every API and worker process of one machine (prometheus_client's
multiprocess mode: each process writes its own files under one directory, a scrape adds them up).

Recording is a dictionary lookup and one or two memory-mapped additions: a few microseconds.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_PID = re.compile(r"_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(directory: Path) -> Path:
    """Use `directory` for this process's metrics (unless PROMETHEUS_MULTIPROC_DIR names one), after
    removing the files of processes that are gone. Call before anything is recorded."""
    chosen = Path(os.environ.get(ENV) or directory).resolve()
    chosen.mkdir(parents=True, exist_ok=True)
    for path in chosen.glob("*.db"):
        found = _PID.search(path.name)
        if found and not _alive(int(found.group(1))):
            mark_process_dead(int(found.group(1)), str(chosen))  # type: ignore[no-untyped-call]
            path.unlink(missing_ok=True)
    os.environ[ENV] = str(chosen)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return chosen


class _Metrics:
    """Every metric hpcplane records; made once per process, after prepare()."""

    def __init__(self) -> None:
        self.requests = Counter(
            "hpcplane_requests",
            "API calls by Action and Code (OK on success)",
            ["action", "code"],
        )
        self.latency = Histogram(
            "hpcplane_request_seconds",
            "API call latency by Action",
            ["action"],
            buckets=LATENCY_BUCKETS,
        )
        self.throttled = Counter(
            "hpcplane_throttled_requests",
            "calls refused with a Throttling.* code (by Action: hpcplane_requests)",
        )
        self.nonces_refused = Counter(
            "hpcplane_nonces_refused", "calls refused as replays (SignatureNonceUsed)"
        )
        self.tasks_started = Counter(
            "hpcplane_tasks_started", "tasks whose first step ran, by TaskType", ["task_type"]
        )
        self.tasks_ended = Counter(
            "hpcplane_tasks_ended", "tasks ended, by TaskType and Status", ["task_type", "status"]
        )
        self.steps = Counter("hpcplane_steps", "task steps run, by TaskType", ["task_type"])
        self.step_seconds = Histogram(
            "hpcplane_step_seconds",
            "time to run one step (its transaction), by TaskType",
            ["task_type"],
            buckets=STEP_BUCKETS,
        )
        self.leases_lost = Counter(
            "hpcplane_leases_lost", "steps rolled back because their lease had been taken over"
        )
        self.takeovers = Counter("hpcplane_lease_takeovers", "claims of a task whose lease had expired")
        # Children made once: labels() costs more than the addition itself.
        self._request_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._step_children: dict[str, tuple[Any, Any, Any]] = {}
        self._lock = threading.Lock()

    def request(self, action: str, code: str, seconds: float) -> None:
        children = self._request_children.get((action, code))
        if children is None:
            with self._lock:
                children = (self.requests.labels(action, code), self.latency.labels(action))
                self._request_children[(action, code)] = children
        children[0].inc()
        children[1].observe(seconds)
        if code.startswith("Throttling"):
            self.throttled.inc()
        elif code == "SignatureNonceUsed":
            self.nonces_refused.inc()

    def step(self, task_type: str, seconds: float, first: bool) -> None:
        children = self._step_children.get(task_type)
        if children is None:
            with self._lock:
                children = (
                    self.steps.labels(task_type),
                    self.step_seconds.labels(task_type),
                    self.tasks_started.labels(task_type),
                )
                self._step_children[task_type] = children
        if first:
            children[2].inc()
        children[0].inc()
        children[1].observe(seconds)


_metrics: _Metrics | None = None
_made = threading.Lock()


def get() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _made:
            if _metrics is None:
                _metrics = _Metrics()
    return _metrics


def record_request(action: str, code: str, seconds: float) -> None:
    get().request(action, code, seconds)


def record_step(task_type: str, seconds: float, first: bool) -> None:
    get().step(task_type, seconds, first)


def record_end(task_type: str, status: str) -> None:
    get().tasks_ended.labels(task_type, status).inc()


def record_lease_lost() -> None:
    get().leases_lost.inc()


def record_takeover() -> None:
    get().takeovers.inc()


class QueueCollector(Collector):
    """The engine's queue at scrape time, read from the store (the same for every process)."""

    def __init__(self, read: Callable[[], tuple[int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Any]:
        unfinished, due = self._read()
        yield GaugeMetricFamily("hpcplane_tasks_unfinished", "tasks not ended yet", value=unfinished)
        yield GaugeMetricFamily("hpcplane_tasks_due", "queue depth: tasks due now and not held", value=due)


def scrape(queue: Callable[[], tuple[int, int]] | None = None) -> bytes:
    """The Prometheus text of every process writing to this machine's metrics directory."""
    get()  # so every family exists in this process's files, even before its first event
    registry = CollectorRegistry()
    if os.environ.get(ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))  # one process (embedded in a test): the default registry
    if queue is not None:
        registry.register(QueueCollector(queue))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()
