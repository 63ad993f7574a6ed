"""Token buckets in a real Redis: the in-process rules, shared by every API process, RedisError if gone."""

from __future__ import annotations

import uuid

import pytest

from hpcplane.api.throttle import RateLimiter, parse_quotas
from hpcplane.domain.errors import RedisError
from hpcplane.store.ratelimits import RedisBuckets
from tests.support.proxy import Proxy


def admitted(limiter: RateLimiter, key: str, action: str, calls: int) -> int:
    return sum(1 for _ in range(calls) if limiter.take(key, action) == 0)


@pytest.mark.redis
def test_redis_buckets_follow_the_same_rules(redis_url: str) -> None:
    """In Redis: burst then refusal with a wait in milliseconds, keys independent, action quotas apply."""
    limiter = RedisBuckets(redis_url, 3.0, parse_quotas(2, 3, "AddNodes=0.5/1"))
    hot, calm = f"hot-{uuid.uuid4().hex}", f"calm-{uuid.uuid4().hex}"
    try:
        assert admitted(limiter, hot, "ListTasks", 3) == 3
        wait = limiter.take(hot, "ListTasks")
        assert 0 < wait <= 500
        assert admitted(limiter, calm, "AddNodes", 3) == 1
        assert 1000 < limiter.take(calm, "AddNodes") <= 2000
        assert admitted(limiter, calm, "ListTasks", 3) == 2
    finally:
        limiter.close()


@pytest.mark.redis
def test_two_processes_share_redis_buckets(redis_url: str) -> None:
    """Two limiters on one Redis (two API processes) spend one bucket per key between them."""
    quotas = parse_quotas(1, 4, "")
    first, second = RedisBuckets(redis_url, 3.0, quotas), RedisBuckets(redis_url, 3.0, quotas)
    key = f"shared-{uuid.uuid4().hex}"
    try:
        assert admitted(first, key, "ListTasks", 3) + admitted(second, key, "ListTasks", 3) == 4
    finally:
        first.close()
        second.close()


@pytest.mark.redis
def test_redis_unreachable_is_redis_error(redis_url: str) -> None:
    """Redis gone: the documented RedisError, as for the nonce cache."""
    host, port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = Proxy(host, int(port))
    url = f"redis://{proxy.endpoint}/0"
    limiter = RedisBuckets(url, 1.0, parse_quotas(1, 4, ""))
    try:
        assert limiter.take(f"k-{uuid.uuid4().hex}", "ListTasks") == 0
        proxy.close()
        with pytest.raises(RedisError):
            limiter.take(f"k-{uuid.uuid4().hex}", "ListTasks")
    finally:
        limiter.close()
