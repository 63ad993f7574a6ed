"""Client-side deadlines and a connection budget for the store's server connections.

statement_timeout and lock_timeout are enforced by the server, so they cannot bound a path that stopped
answering (a frozen network, a stopped proxy): the socket stays open and a blocked read waits forever.
Every store call therefore runs under a deadline kept here. A watchdog thread shuts the socket of any
connection whose call passed its deadline; the blocked read then fails at once, the driver raises, and
the store answers DbError. The same call first takes one slot of the process's connection budget, so a
process never holds more connections than it was given, and a call that cannot get one in time also
answers DbError instead of waiting.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hpcplane.domain.errors import DbError

# How often the watchdog looks for calls past their deadline (the margin a frozen call may overrun by).
_TICK = 0.1
# How long the watchdog thread outlives the last call (so a busy process does not start one per call).
_LINGER = 5.0


@dataclass(eq=False)
class Call:
    """One store call in progress: its deadline and the driver connection it uses, once it has one.

    Each statement and the commit get `seconds` from when they start (`touch`), never past `limit`
    (an explicit deadline, such as the end of the engine's lease)."""

    deadline: float
    limit: float = float("inf")
    connection: Any = None
    fired: bool = False
    previous: Call | None = field(default=None, repr=False)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Deadlines:
    """The budget (a semaphore of `budget` slots) and the deadline watchdog of one connection pool."""

    def __init__(self, budget: int, seconds: float) -> None:
        self.budget = budget
        self.seconds = seconds
        self._slots = threading.BoundedSemaphore(budget)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._active: set[Call] = set()
        self._watchdog: threading.Thread | None = None
        self.expired = 0  # calls the watchdog cut, for the logs and the tests
        # Frees one slot held by an idle kept connection (store/readers.py), or says there was none.
        self.starved: Callable[[], bool] | None = None
        self.waiting = 0  # calls waiting for a slot now: a kept connection given back then lets go of its own

    @contextlib.contextmanager
    def call(self, deadline: float | None = None, *, slot: bool = True) -> Iterator[Call]:
        """Take a connection slot and run the block under a deadline: `seconds` for getting a connection
        and for each statement and the commit (see `touch`), never past `deadline` (monotonic seconds)
        when one is given. A nested call in the same thread keeps the outer call's limit. `slot=False`:
        the caller already holds one (`try_hold`: a kept connection)."""
        outer: Call | None = getattr(self._local, "call", None)
        limit = float("inf") if deadline is None else deadline
        if outer is not None:
            limit = min(limit, outer.limit)
        first = min(limit, time.monotonic() + self.seconds)
        if slot:
            self._acquire(first)
        current = Call(first, limit, previous=outer)
        self._local.call = current
        with self._lock:
            self._active.add(current)
            self._ensure_watchdog()
        try:
            yield current
        finally:
            with self._lock:
                self._active.discard(current)
            self._local.call = outer
            if slot:
                self._slots.release()

    def _acquire(self, first: float) -> None:
        """A slot at once, else one that an idle kept connection gives up, else one freed in time."""
        if self._slots.acquire(blocking=False):
            return
        while self.starved is not None and self.starved():
            if self._slots.acquire(blocking=False):
                return
        with self._lock:
            self.waiting += 1
        try:
            got = self._slots.acquire(timeout=max(0.0, first - time.monotonic()))
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            raise DbError() from TimeoutError(f"all {self.budget} store connections of this process in use")

    def try_hold(self) -> bool:
        """Take a slot for a connection kept beyond one call, if one is free now (`release_held` gives
        it back)."""
        return self._slots.acquire(blocking=False)

    def release_held(self) -> None:
        self._slots.release()

    def current(self) -> Call | None:
        call: Call | None = getattr(self._local, "call", None)
        return call

    def touch(self) -> None:
        """A statement or commit starts on this thread's call: it gets `seconds` from now."""
        call = self.current()
        if call is not None and not call.fired:
            call.deadline = min(call.limit, time.monotonic() + self.seconds)

    def attach(self, connection: Any) -> None:
        """The pool handed `connection` to this thread's current call: the watchdog may cut it now."""
        call = self.current()
        if call is not None:
            with self._lock:
                call.connection = connection
                if call.fired or call.remaining() <= 0:
                    call.fired = True
                    _cut(connection)

    def connect_timeout(self) -> int:
        """Whole seconds left to this thread's call for opening a connection, and at least libpq's
        minimum of 2 s; a call whose deadline has passed fails now.

        A call with under 2 s left (a step near the end of a short lease) still connects: a connect
        holds no lock and starts no transaction, and a connection that arrives past the call's deadline
        is cut as the pool hands it over (`attach`), before any statement. Refusing instead left a
        worker whose pool was empty unable to run any step of a lease under 2 s."""
        call = self.current()
        left = self.seconds if call is None else call.remaining()
        if left <= 0:
            raise DbError() from TimeoutError("the call's deadline passed before it could connect")
        return max(2, int(left))

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name="hpcplane-db-deadline", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(_TICK)
            now = time.monotonic()
            with self._lock:
                if self._active:
                    idle_since = now
                elif now - idle_since > _LINGER:
                    self._watchdog = None  # the next call starts another
                    return
                for call in self._active:
                    if not call.fired and call.deadline <= now and call.connection is not None:
                        call.fired = True
                        self.expired += 1
                        _cut(call.connection)


def _cut(connection: Any) -> None:
    """Shut the connection's socket down (both ways): a read blocked on it returns and the driver fails.

    The file descriptor stays the driver's; only the socket under it is shut, so nothing else can be
    hit if the descriptor number is reused later."""
    try:
        if getattr(connection, "closed", True):
            return
        fd = connection.pgconn.socket
    except Exception:  # a connection already broken needs no cutting
        return
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()  # the descriptor stays open: it belongs to the driver
