"""One chaos run's figures, the invariants that judge it, and the table it prints."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """One injected fault: what clients and the engine saw, and how long recovery took."""

    name: str
    backend: str
    skipped: str | None = None
    duration: float = 0.0  # seconds the fault lasted
    recover: float | None = None  # fault end -> the first successful call that started after it
    first_step: float | None = None  # fault end -> the first step any worker recorded after it
    takeover: list[float] = field(default_factory=list)  # fault start -> another holder, per task
    longest_call: float | None = None  # the longest client call that overlapped the fault
    codes: Counter[str] = field(default_factory=Counter)
    note: str = ""


@dataclass
class Run:
    """Everything a chaos run measured."""

    profile: str
    faults: list[Fault] = field(default_factory=list)
    accepted: int = 0
    lost: int = 0
    stuck: int = 0
    applied_twice: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    drain: float | None = None  # last fault end -> every accepted task ended
    goodput: str = "not measured"
    throttle: str = "not measured"  # goodput at 3x the throttle quota
    connections: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (peak, budget)
    breaches: list[str] = field(default_factory=list)

    def breach(self, message: str) -> None:
        self.breaches.append(message)

    def takeovers(self) -> list[float]:
        return [t for f in self.faults for t in f.takeover]

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "accepted": self.accepted,
            "lost": self.lost,
            "stuck": self.stuck,
            "applied_twice": self.applied_twice,
            "takeover_p50": percentile(self.takeovers(), 50),
            "takeover_p99": percentile(self.takeovers(), 99),
            "drain_s": self.drain,
            "codes": dict(self.codes),
            "goodput": self.goodput,
            "throttle_goodput": self.throttle,
            "faults": [
                {
                    "name": f.name,
                    "backend": f.backend,
                    "skipped": f.skipped,
                    "duration_s": f.duration,
                    "recover_s": f.recover,
                    "first_step_s": f.first_step,
                    "longest_call_s": f.longest_call,
                    "codes": dict(f.codes),
                }
                for f in self.faults
            ],
            "connections": {k: {"peak": p, "budget": b} for k, (p, b) in self.connections.items()},
            "breaches": self.breaches,
        }


def percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 2)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(run: Run) -> str:
    """The table `make chaos` prints."""
    lines = [
        f"chaos run ({run.profile})",
        "",
        f"| {'fault':<26} | {'store':<8} | {'lasted s':>8} | {'recover s':>9} | {'1st step s':>10} "
        f"| {'takeover p50/p99 s':>18} | {'longest call s':>14} | codes clients saw",
        "|" + "|".join("-" * w for w in (28, 10, 10, 11, 12, 20, 16, 20)) + "|",
    ]
    for f in run.faults:
        if f.skipped:
            lines.append(f"| {f.name:<26} | {f.backend:<8} | skipped: {f.skipped}")
            continue
        takeover = (
            f"{_s(percentile(f.takeover, 50))}/{_s(percentile(f.takeover, 99))} (n={len(f.takeover)})"
            if f.takeover
            else "-"
        )
        codes = ", ".join(f"{code} {n}" for code, n in sorted(f.codes.items()) if code != "ok") or "none"
        lines.append(
            f"| {f.name:<26} | {f.backend:<8} | {f.duration:>8.1f} | {_s(f.recover):>9}"
            f" | {_s(f.first_step):>10} "
            f"| {takeover:>18} | {_s(f.longest_call):>14} | {codes}{'; ' + f.note if f.note else ''}"
        )
    all_takeovers = run.takeovers()
    lines += [
        "",
        f"tasks accepted {run.accepted} / lost {run.lost} / stuck {run.stuck} / steps applied twice"
        f" {run.applied_twice}   (ended: {', '.join(f'{k} {v}' for k, v in sorted(run.statuses.items()))})",
        f"takeover p50 {_s(percentile(all_takeovers, 50))} s, p99 {_s(percentile(all_takeovers, 99))} s"
        f" (n={len(all_takeovers)}); every task ended {_s(run.drain)} s after the last fault",
        "client outcomes: " + ", ".join(f"{code} {n}" for code, n in sorted(run.codes.items())),
        f"goodput under overload: {run.goodput}",
        f"goodput at 3x the throttle quota: {run.throttle}",
        "connections per process, peak (budget): "
        + (
            ", ".join(f"{role} {peak} ({budget})" for role, (peak, budget) in sorted(run.connections.items()))
            or "-"
        ),
        "invariants: " + ("all hold" if not run.breaches else "BROKEN: " + "; ".join(run.breaches)),
    ]
    return "\n".join(lines)
