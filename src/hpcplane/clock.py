"""Time, behind a seam so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, optionally shifted by `offset` seconds (to test clients against a skewed server)."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset
