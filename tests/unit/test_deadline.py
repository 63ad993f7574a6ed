"""The store's call deadlines and connection budget (store/deadline.py), without a database."""

from __future__ import annotations

import time

import pytest

from hpcplane.domain.errors import DbError
from hpcplane.store.deadline import Deadlines


def test_a_call_past_the_budget_is_refused_with_db_error() -> None:
    """With every slot taken, the next call answers DbError once its deadline passes, naming the budget."""
    deadlines = Deadlines(budget=1, seconds=5.0)
    with deadlines.call():
        with pytest.raises(DbError) as raised, deadlines.call(deadline=time.monotonic() + 0.05):
            pass
        assert "all 1 store connections" in str(raised.value.__cause__)
    with deadlines.call():  # the slot came back
        pass


def test_a_nested_call_keeps_the_sooner_deadline() -> None:
    """A call inside another in the same thread ends no later than the outer one."""
    deadlines = Deadlines(budget=2, seconds=60.0)
    with deadlines.call(deadline=time.monotonic() + 3.0) as outer, deadlines.call() as inner:
        assert inner.deadline == outer.deadline
        assert deadlines.current() is inner
    assert deadlines.current() is None


def test_connect_gets_the_time_left_and_at_least_libpq_minimum() -> None:
    """A connection is opened with the call's whole seconds left, and with libpq's 2 s minimum when less
    is left (the connection is cut on hand-over if it arrives late); past the deadline the call fails."""
    deadlines = Deadlines(budget=1, seconds=5.5)
    with deadlines.call(deadline=time.monotonic() + 4.5):
        assert deadlines.connect_timeout() == 4
    with deadlines.call(deadline=time.monotonic() + 1.0):
        assert deadlines.connect_timeout() == 2
    with deadlines.call(deadline=time.monotonic() + 0.01):
        time.sleep(0.02)
        with pytest.raises(DbError) as raised:
            deadlines.connect_timeout()
    assert "deadline passed" in str(raised.value.__cause__)
    short = Deadlines(budget=1, seconds=1.5)  # HPCPLANE_DB_TIMEOUT=1: 2 s is the best libpq can do
    with short.call():
        assert short.connect_timeout() == 2
