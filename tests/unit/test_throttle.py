"""Token buckets in process, with a hand-driven clock (tests/integration/test_ratelimits.py: in Redis)."""

from __future__ import annotations

import pytest

from hpcplane.api.throttle import LocalBuckets, Quota, Quotas, RateLimiter, parse_quotas


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
