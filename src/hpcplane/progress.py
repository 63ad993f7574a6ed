"""Waiting for tasks: a progress bar on a terminal (rich), plain lines otherwise, and the exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Exit codes of `hpcplane call` and `hpcplane task wait` (docs/cli.md).
EXIT_OK = 0
EXIT_API_ERROR = 1  # the server answered with an error Code
EXIT_USAGE = 2  # bad options or parameters (click's own code)
EXIT_CLIENT = 3  # no credentials, endpoint unreachable, an answer that is not JSON, task not found
EXIT_FAILED = 4  # the task ended Failed
EXIT_PARTIAL = 5  # the task ended PartialFail
EXIT_TIMEOUT = 6  # the task had not ended when --timeout passed

EXIT_OF_STATUS = {"Success": EXIT_OK, "Failed": EXIT_FAILED, "PartialFail": EXIT_PARTIAL}


def eta_seconds(first: tuple[float, int], now: float, step: int, total: int) -> float | None:
    """Seconds left at the step rate seen since `first` (time, step); None before any step was seen."""
    started, first_step = first
    done = step - first_step
    if done <= 0 or now <= started:
        return None
    return (total - step) * (now - started) / done


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


class Display(Protocol):
    def update(self, task: dict[str, Any], elapsed: float, eta: float | None) -> None: ...

    def close(self) -> None: ...


class LineDisplay:
    """One plain line whenever the step or the status changes (for logs and pipes)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._last: tuple[object, object] | None = None

    def update(self, task: dict[str, Any], elapsed: float, eta: float | None) -> None:
        now = (task.get("Status"), task.get("CurrentStep"))
        if now == self._last:
            return
        self._last = now
        self._stream.write(
            f"{task.get('TaskId')} {task.get('TaskType')} {task.get('Status')} "
            f"step {task.get('CurrentStep')}/{task.get('TotalSteps')} "
            f"elapsed {_clock(elapsed)} eta {_clock(eta)}\n"
        )
        self._stream.flush()

    def close(self) -> None:
        pass


class BarDisplay:
    """A rich progress bar: TaskType, bar, CurrentStep/TotalSteps, elapsed, ETA from the step rate."""

    def __init__(self, stream: IO[str]) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=stream, force_terminal=True),
            transient=False,
        )
        self._bar: Any = None
        self._progress.start()

    def update(self, task: dict[str, Any], elapsed: float, eta: float | None) -> None:
        description = f"{task.get('TaskType')} {task.get('Status')}"
        total = int(task.get("TotalSteps") or 0) or None
        step = int(task.get("CurrentStep") or 0)
        if self._bar is None:
            self._bar = self._progress.add_task(description, total=total, completed=step, eta=_clock(eta))
        else:
            self._progress.update(self._bar, description=description, completed=step, eta=_clock(eta))

    def close(self) -> None:
        self._progress.stop()


def display_for(stream: IO[str]) -> Display:
    """The bar on a terminal, lines otherwise."""
    return BarDisplay(stream) if stream.isatty() else LineDisplay(stream)


def wait_task(
    fetch: Callable[[], dict[str, Any]],
    display: Display,
    *,
    timeout: float,
    interval: float = 0.25,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], int]:
    """Poll the task until it ends or `timeout` passes; return its last view and the exit code."""
    started = monotonic()
    first: tuple[float, int] | None = None
    try:
        while True:
            task = fetch()
            now = monotonic()
            step, total = int(task.get("CurrentStep") or 0), int(task.get("TotalSteps") or 0)
            if first is None:
                first = (now, step)
            display.update(task, now - started, eta_seconds(first, now, step, total))
            status = str(task.get("Status"))
            if status in EXIT_OF_STATUS:
                return task, EXIT_OF_STATUS[status]
            if now - started >= timeout:
                return task, EXIT_TIMEOUT
            sleep(min(interval, max(0.0, timeout - (now - started))))
    finally:
        display.close()


def task_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table("TaskId", "TaskType", "Status", "Step", "Errors")
    for task in tasks:
        table.add_row(
            str(task.get("TaskId")),
            str(task.get("TaskType")),
            str(task.get("Status")),
            f"{task.get('CurrentStep')}/{task.get('TotalSteps')}",
            str(error_count(task)),
        )
    return table


def error_count(task: dict[str, Any]) -> int:
    try:
        errors = json.loads(task.get("Errors") or "[]")
    except ValueError:
        return 0
    return len(errors) if isinstance(errors, list) else 0


def watch_tasks(
    fetch: Callable[[], list[dict[str, Any]]],
    stream: IO[str],
    *,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Show the cluster's tasks that run (and those seen running) until none is Processing."""
    watched: dict[str, dict[str, Any]] = {}
    live: Live | None = None
    if stream.isatty():
        live = Live(console=Console(file=stream, force_terminal=True), auto_refresh=False)
        live.start()
    printed: dict[str, tuple[object, object]] = {}
    try:
        while True:
            for task in fetch():
                task_id = str(task.get("TaskId"))
                if task.get("Status") == "Processing" or task_id in watched:
                    watched[task_id] = task
            shown = list(watched.values())
            if live is not None:
                live.update(task_table(shown), refresh=True)
            else:
                for task in shown:
                    key = (task.get("Status"), task.get("CurrentStep"))
                    if printed.get(str(task.get("TaskId"))) != key:
                        printed[str(task.get("TaskId"))] = key
                        stream.write(
                            f"{task.get('TaskId')} {task.get('TaskType')} {task.get('Status')} "
                            f"step {task.get('CurrentStep')}/{task.get('TotalSteps')}\n"
                        )
                stream.flush()
            if not any(task.get("Status") == "Processing" for task in shown):
                return shown
            sleep(interval)
    finally:
        if live is not None:
            live.stop()
