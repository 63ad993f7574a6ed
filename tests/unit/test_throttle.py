"""Token buckets in process, with a hand-driven clock (tests/integration/test_ratelimits.py: in Redis)."""

from __future__ import annotations

import pytest

from hpcplane.api.throttle import LocalBuckets, Quota, Quotas, RateLimiter, Unlimited, parse_quotas, wait_ms


class FakeClock:
    """Seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted(limiter: RateLimiter, key: str, action: str, calls: int) -> int:
    return sum(1 for _ in range(calls) if limiter.take(key, action) == 0)


def test_parse_quotas() -> None:
    """`rate` 0 is no per-key quota; per-action quotas are Action=rate[/burst], burst defaulting to rate."""
    quotas = parse_quotas(10, 20, "CreateCluster=0.5/3; AddNodes=5")
    assert quotas.per_key == Quota(10, 20)
    assert quotas.per_action == {"CreateCluster": Quota(0.5, 3), "AddNodes": Quota(5, 5)}
    assert parse_quotas(0, 20, "").unlimited
    assert not parse_quotas(0, 20, "AddNodes=1").unlimited


@pytest.mark.parametrize("text", ["AddNodes", "AddNodes=0", "AddNodes=-1", "Add Nodes=1", "AddNodes=1/x"])
def test_parse_quotas_refuses_nonsense(text: str) -> None:
    """A per-action quota that is not Action=rate[/burst] with a positive rate is a configuration error."""
    with pytest.raises(ValueError, match="Action=rate"):
        parse_quotas(10, 20, text)


def test_burst_then_refusal_with_the_wait_until_the_next_token() -> None:
    """A full bucket admits `burst` calls at once; the next waits 1/rate seconds, said in milliseconds."""
    clock = FakeClock()
    limiter = LocalBuckets(parse_quotas(4, 3, ""), clock)
    assert admitted(limiter, "k", "ListTasks", 3) == 3
    assert limiter.take("k", "ListTasks") == 250
    clock.now += 0.1
    assert limiter.take("k", "ListTasks") == 150
    clock.now += 0.15
    assert limiter.take("k", "ListTasks") == 0
    assert limiter.take("k", "ListTasks") == 250


def test_refill_never_exceeds_the_burst() -> None:
    """An hour of silence saves up `burst` tokens, not more."""
    clock = FakeClock()
    limiter = LocalBuckets(parse_quotas(100, 5, ""), clock)
    assert admitted(limiter, "k", "ListTasks", 5) == 5
    clock.now += 3600
    assert admitted(limiter, "k", "ListTasks", 50) == 5


def test_keys_are_independent() -> None:
    """One AccessKey spending its quota leaves every other key's untouched."""
    limiter = LocalBuckets(parse_quotas(1, 2, ""), FakeClock())
    assert admitted(limiter, "hot", "ListTasks", 100) == 2
    assert admitted(limiter, "calm", "ListTasks", 2) == 2


def test_action_quota_applies_within_the_key_quota() -> None:
    """An action with a quota of its own spends both buckets; other actions spend only the key's."""
    limiter = LocalBuckets(parse_quotas(1, 10, "AddNodes=1/2"), FakeClock())
    assert admitted(limiter, "k", "AddNodes", 5) == 2
    assert admitted(limiter, "k", "ListTasks", 20) == 8
    assert admitted(limiter, "other", "AddNodes", 5) == 2


def test_a_refused_call_takes_no_token() -> None:
    """When the action's bucket is empty the key's bucket keeps its tokens, and the reverse."""
    limiter = LocalBuckets(parse_quotas(1, 3, "AddNodes=1/1"), FakeClock())
    assert admitted(limiter, "k", "AddNodes", 4) == 1
    assert admitted(limiter, "k", "ListTasks", 4) == 2


def test_unlimited_quotas_admit_everything() -> None:
    """No quota configured: every call goes on."""
    limiter = LocalBuckets(Quotas(None), FakeClock())
    assert admitted(limiter, "k", "ListTasks", 1000) == 1000


def test_quota_settings_read_every_way_they_may_be_written() -> None:
    """A burst under 1 is 1 (per key and per action); an action's burst defaults to its rate rounded up,
    at least 1; `,` separates like `;`, and an empty part is skipped, not the end."""
    assert parse_quotas(5, 0, "").per_key == Quota(5, 1)
    quotas = parse_quotas(0, 1, "A=0.5, B=2.5/0;; C=1")
    assert quotas.per_key is None
    assert quotas.per_action == {"A": Quota(0.5, 1), "B": Quota(2.5, 1), "C": Quota(1, 1)}


def test_unlimited_and_unquoted_actions_wait_for_nothing() -> None:
    """Unlimited admits at once; with only per-action quotas, another action takes from no bucket."""
    assert Unlimited().take("k", "AddNodes") == 0
    limiter = LocalBuckets(parse_quotas(0, 1, "AddNodes=1/1"), FakeClock())
    assert admitted(limiter, "k", "ListTasks", 100) == 100
    assert admitted(limiter, "k", "AddNodes", 3) == 1


def test_the_wait_is_at_least_one_millisecond() -> None:
    """A bucket a hair short of one token says 1 ms, never 0 (0 means "go on")."""
    assert wait_ms(0.9999, Quota(10, 1)) == 1
    assert wait_ms(0.0, Quota(10, 1)) == 100


def test_buckets_that_have_refilled_are_forgotten_every_10000_calls() -> None:
    """Every 10,000th admitted call forgets the buckets idle for longer than the longest refill (burst /
    rate: 2 s here), which are the same as new ones; those idle exactly that long are kept."""
    clock = FakeClock()
    limiter = LocalBuckets(parse_quotas(2, 4, ""), clock)
    for i in range(4999):
        assert limiter.take(f"old{i}", "ListTasks") == 0
    clock.now += 3
    for i in range(5000):
        assert limiter.take(f"mid{i}", "ListTasks") == 0
    assert len(limiter._state) == 9999  # no call has been the 10,000th yet
    clock.now += 2  # the `mid` buckets are now idle exactly the longest refill time
    assert limiter.take("new", "ListTasks") == 0
    assert len(limiter._state) == 5001  # the `old` ones forgotten
    clock.now += 5
    for i in range(9999):
        assert limiter.take(f"next{i}", "ListTasks") == 0
    assert len(limiter._state) == 15000  # 9,999 admitted calls since the last time: not yet
    clock.now += 5
    assert limiter.take("last", "ListTasks") == 0
    assert set(limiter._state) == {"last"}


def test_buckets_of_per_action_quotas_are_forgotten_too() -> None:
    """With per-action quotas only, the longest refill is the longest burst / rate among them."""
    clock = FakeClock()
    limiter = LocalBuckets(parse_quotas(0, 1, "AddNodes=2/4"), clock)
    for i in range(9999):
        assert limiter.take(f"k{i}", "AddNodes") == 0
    clock.now += 3  # beyond 4 / 2 = 2 s
    assert limiter.take("new", "AddNodes") == 0
    assert set(limiter._state) == {"new:AddNodes"}
