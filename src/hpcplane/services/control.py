"""The emulator control API's use cases: reset, runtime faults and step timing, the clock, one step by hand.

The tuning lives in the store (one meta row), so every API and worker process applies it: each engine
reads it when it claims a task, so tasks claimed after a change run under the new rules.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpcplane.clock import Clock
from hpcplane.engine.runner import Engine
from hpcplane.providers.faults import FaultSpecError, parse_faults
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.store import accounts as account_store
from hpcplane.store import control as store
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox

MANUAL_STEP_SECONDS = 10 * 365 * 86400.0  # "manual": a step waits until it is stepped or the clock moves


class ControlError(Exception):
    """A control request that cannot be done; `kind` picks the HTTP status at the edge."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "invalid" | "not-found" | "busy"
        self.message = message


@dataclass(frozen=True, slots=True)
class Defaults:
    """The start-up settings the tuning overrides (and a full reset returns to)."""

    faults: str
    step_seconds: float
    jitter: float


class Control:
    """Reads and changes the runtime tuning; resets state; moves and steps tasks."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        engine: Engine,
        cloud: SimulatedCloud,
        defaults: Defaults,
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._engine = engine
        self._cloud = cloud
        self._defaults = defaults
        self._wake = wake
        self._applied: str | None = ""

    # --- tuning ---------------------------------------------------------------------------------

    def tuning(self) -> dict[str, Any]:
        """The tuning in force: overrides merged over the start-up settings."""
        with self._db.read() as conn:
            raw = store.get_tuning(conn)
        return self._effective(json.loads(raw) if raw else {})

    def _effective(self, tuning: dict[str, Any]) -> dict[str, Any]:
        step = tuning.get("StepSeconds")
        return {
            "Faults": tuning.get("Faults", self._defaults.faults),
            "StepSeconds": self._defaults.step_seconds if step is None else float(step),
            "Jitter": float(tuning.get("Jitter", self._defaults.jitter)),
            "StepScale": float(tuning.get("StepScale", 1.0)),
            "Manual": bool(tuning.get("Manual", False)),
        }

    def refresh(self) -> None:
        """Apply the stored tuning to this process's simulated cloud (one read of one row)."""
        with self._db.driver() as driver:
            raw = store.read_tuning(driver)
        if raw == self._applied:
            return
        effective = self._effective(json.loads(raw) if raw else {})
        step = (
            MANUAL_STEP_SECONDS if effective["Manual"] else effective["StepSeconds"] * effective["StepScale"]
        )
        self._cloud.retune(parse_faults(effective["Faults"]), step, effective["Jitter"])
        self._applied = raw

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of Faults, StepSeconds, Jitter, StepScale, Manual; None restores a setting."""
        allowed = {"Faults", "StepSeconds", "Jitter", "StepScale", "Manual"}
        unknown = set(changes) - allowed
        if unknown:
            raise ControlError("invalid", f"unknown settings {sorted(unknown)}; allowed: {sorted(allowed)}")
        _check(changes)
        with self._db.write() as conn:
            raw = store.get_tuning(conn)
            tuning = json.loads(raw) if raw else {}
            for name, value in changes.items():
                if value is None:
                    tuning.pop(name, None)
                else:
                    tuning[name] = value
            store.set_tuning(conn, json.dumps(tuning, sort_keys=True))
        self.refresh()
        return self._effective(tuning)

    # --- state and time -------------------------------------------------------------------------

    def reset(self, account_id: str | None, everything: bool) -> dict[str, int]:
        """Delete resources (of one account); with `everything` accounts and keys too, and the tuning."""
        with self._db.write() as conn:
            if account_id is not None:
                found = account_store.find_account(conn, account_id)
                if found is None:
                    raise ControlError("not-found", f"no account {account_id!r}")
                account_id = found.id
            deleted = store.reset(conn, account_id=account_id, everything=everything)
        self.refresh()
        return deleted

    def advance(self, seconds: float) -> int:
        """Move the simulated clock: every waiting step comes `seconds` closer."""
        if not seconds > 0:
            raise ControlError("invalid", "Seconds must be a positive number")
        with self._db.write() as conn:
            moved = store.advance(conn, seconds, self._clock.now())
        self._wake()
        return moved

    def step(self, task_id: str, timeout: float = 5.0) -> None:
        """Run one step of an unfinished task now (in manual mode nothing else runs it)."""
        with self._db.write() as conn:
            exists, finished = store.task_exists(conn, task_id)
            if not exists:
                raise ControlError("not-found", f"no task {task_id!r}")
            if finished:
                raise ControlError("invalid", f"task {task_id} has ended")
        before = self._current_step(task_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._db.write() as conn:
                store.make_due(conn, task_id, self._clock.now())
            for lease in self._engine.claim(1, task_id=task_id):
                self._engine.step_once(lease)
                return
            if self._current_step(task_id) != before:
                return  # a worker ran the step we made due
            time.sleep(0.02)
        raise ControlError("busy", f"task {task_id} is held by a running worker")

    def _current_step(self, task_id: str) -> int:
        with self._db.driver() as driver:
            return store.current_step(driver, task_id)


def _check(changes: dict[str, Any]) -> None:
    faults = changes.get("Faults")
    if faults is not None:
        if not isinstance(faults, str):
            raise ControlError("invalid", "Faults must be a string like AddNodes.fail_step=3")
        try:
            parse_faults(faults)
        except FaultSpecError as error:
            raise ControlError("invalid", str(error)) from None
    for name in ("StepSeconds", "Jitter", "StepScale"):
        value = changes.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ControlError("invalid", f"{name} must be a number >= 0")
    jitter = changes.get("Jitter")
    if jitter is not None and jitter > 1:
        raise ControlError("invalid", "Jitter must be between 0 and 1")
    manual = changes.get("Manual")
    if manual is not None and not isinstance(manual, bool):
        raise ControlError("invalid", "Manual must be true or false")


def control_token(db: Database, box: SecretBox, configured: str | None) -> str:
    """HPCPLANE_CONTROL_TOKEN, else the store's own (sealed at rest, made on first use)."""
    if configured:
        return configured
    with db.write() as conn:
        sealed = account_store.get_meta(conn, "control_token")
        if sealed is None:
            token = secrets.token_urlsafe(24)
            account_store.set_meta(conn, "control_token", box.seal(token))
            return token
    return box.open(sealed)
