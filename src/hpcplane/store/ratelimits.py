"""Token buckets in Redis, shared by every API process: one atomic Lua script, one round trip a call."""

from __future__ import annotations

import redis

from hpcplane.api.throttle import Quotas
from hpcplane.domain.errors import RedisError

# KEYS: the buckets; ARGV: rate (tokens a second) and burst of each, in KEYS' order. Time is Redis's own
# clock, so every API process sees the same buckets whatever its clock says. Returns 0 and takes a token
# from every bucket, or returns the milliseconds until each bucket holds one and takes nothing.
_TAKE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1]) / 1000
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < 1 then
    wait = math.max(wait, math.ceil((1 - tokens) / rate))
  end
end
if wait > 0 then
  return wait
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1]) / 1000
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 't', tostring(levels[i] - 1), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate) + 1000)
end
return 0
"""


class RedisBuckets:
    """The token buckets of `api.throttle`, kept in Redis (`hpcplane:rate:<bucket>` hashes)."""

    def __init__(self, url: str, timeout: float, quotas: Quotas) -> None:
        self._quotas = quotas
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._client.register_script(_TAKE)

    def take(self, access_key_id: str, action: str) -> int:
        buckets = self._quotas.buckets(access_key_id, action)
        if not buckets:
            return 0
        keys = [f"hpcplane:rate:{name}" for name, _ in buckets]
        args: list[str | int] = []
        for _, quota in buckets:
            args += [repr(quota.rate), quota.burst]
        try:
            return int(self._script(keys=keys, args=args))
        except redis.RedisError as error:
            raise RedisError() from error

    def close(self) -> None:
        self._client.close()
