"""Flow control: token buckets per AccessKey and per (AccessKey, action), checked after authentication.

A bucket holds up to `burst` tokens and gains `rate` tokens a second; a call takes one token from its
key's bucket and, when its action has a quota of its own, one from that action's bucket, or from
neither when either is empty. This module is the in-process form (one API process); the shared form,
for every API process of one deployment, is `store.ratelimits.RedisBuckets`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

_PRUNE_EVERY = 10_000
_ACTION_QUOTA = re.compile(r"([A-Za-z][A-Za-z0-9]*)=(\d+(?:\.\d+)?)(?:/(\d+))?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Quota:
    """`rate` tokens a second, at most `burst` saved up."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Quotas:
    """The quota of every AccessKey (None: unlimited) and the per-action quotas of each AccessKey."""

    per_key: Quota | None
    per_action: Mapping[str, Quota] = field(default_factory=dict)

    @property
    def unlimited(self) -> bool:
        return self.per_key is None and not self.per_action

    def buckets(self, access_key_id: str, action: str) -> list[tuple[str, Quota]]:
        """The buckets one call takes a token from: (bucket name, its quota)."""
        found: list[tuple[str, Quota]] = []
        if self.per_key is not None:
            found.append((access_key_id, self.per_key))
        quota = self.per_action.get(action)
        if quota is not None:
            found.append((f"{access_key_id}:{action}", quota))
        return found


def parse_quotas(rate: float, burst: int, actions: str) -> Quotas:
    """Settings to quotas: `rate` 0 means no per-key limit; `actions` is `Action=rate[/burst];...`."""
    per_key = Quota(rate, max(1, burst)) if rate > 0 else None
    per_action: dict[str, Quota] = {}
    for part in actions.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        match = _ACTION_QUOTA.fullmatch(part)
        if match is None or float(match[2]) <= 0:
            raise ValueError(f"action rate limit {part!r}: expected Action=rate[/burst] with rate > 0")
        action_rate = float(match[2])
        action_burst = int(match[3]) if match[3] else max(1, math.ceil(action_rate))
        per_action[match[1]] = Quota(action_rate, max(1, action_burst))
    return Quotas(per_key, per_action)


class RateLimiter(Protocol):
    """Takes a call's tokens: 0 when the call may go on, else the milliseconds until it could."""

    def take(self, access_key_id: str, action: str) -> int: ...


class Unlimited:
    """No quota at all."""

    def take(self, access_key_id: str, action: str) -> int:
        return 0


def refill(tokens: float, elapsed: float, quota: Quota) -> float:
    """A bucket's tokens after `elapsed` seconds."""
    return min(float(quota.burst), tokens + max(0.0, elapsed) * quota.rate)


def wait_ms(tokens: float, quota: Quota) -> int:
    """Milliseconds until a bucket holding `tokens` (< 1) holds one."""
    return max(1, math.ceil((1.0 - tokens) / quota.rate * 1000))


class LocalBuckets:
    """Token buckets in this process's memory, under one lock (a call holds it for a microsecond)."""

    def __init__(self, quotas: Quotas, clock: Callable[[], float] = time.monotonic) -> None:
        self._quotas = quotas
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, list[float]] = {}  # bucket -> [tokens, at]
        self._since_prune = 0

    def take(self, access_key_id: str, action: str) -> int:
        per_key = self._quotas.per_key
        if not self._quotas.per_action:  # the usual case, kept to a few dict and float operations
            if per_key is None:
                return 0
            with self._lock:
                now = self._clock()
                state = self._state.get(access_key_id)
                if state is None:
                    state = self._state[access_key_id] = [float(per_key.burst), now]
                tokens = refill(state[0], now - state[1], per_key)
                if tokens < 1.0:
                    return wait_ms(tokens, per_key)
                state[0], state[1] = tokens - 1.0, now
                self._count(now)
            return 0
        return self._take_all(self._quotas.buckets(access_key_id, action))

    def _take_all(self, buckets: list[tuple[str, Quota]]) -> int:
        if not buckets:
            return 0
        with self._lock:
            now = self._clock()
            levels: list[tuple[list[float], float]] = []
            wait = 0
            for name, quota in buckets:
                state = self._state.get(name)
                if state is None:
                    state = self._state[name] = [float(quota.burst), now]
                tokens = refill(state[0], now - state[1], quota)
                if tokens < 1.0:
                    wait = max(wait, wait_ms(tokens, quota))
                levels.append((state, tokens))
            if wait:
                return wait
            for state, tokens in levels:
                state[0] = tokens - 1.0
                state[1] = now
            self._count(now)
        return 0

    def _count(self, now: float) -> None:
        self._since_prune += 1
        if self._since_prune >= _PRUNE_EVERY:
            self._since_prune = 0
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they are the same as new ones."""
        longest = max(
            [q.burst / q.rate for q in self._quotas.per_action.values()]
            + ([self._quotas.per_key.burst / self._quotas.per_key.rate] if self._quotas.per_key else [])
        )
        for name in [name for name, (_, at) in self._state.items() if now - at > longest]:
            del self._state[name]
