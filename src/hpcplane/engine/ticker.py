"""A thread that runs periodic rounds (the job scheduler's, the autoscaler's) beside a worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog

from hpcplane.domain.errors import DbError

log = structlog.get_logger("hpcplane.ticker")


class Ticker:
    """Every `interval` seconds, each round in turn; a round that fails is logged and tried next time."""

    def __init__(self, interval: float, rounds: Sequence[tuple[str, Callable[[], object]]]) -> None:
        self.interval = interval
        self.rounds = list(rounds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hpcplane-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        for name, round_ in self.rounds:
            try:
                round_()
            except DbError as error:
                log.warning("round failed on the store", round=name, cause=repr(error.__cause__))
            except Exception:
                log.exception("round failed", round=name)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
