"""Requests in flight per server, counted in Redis so that every gateway process sees the same figure.

One sorted set per server (`accounts.limits.server_inflight_key`, which idle stop and sleep also
read): members are request ids, scores the time their process last renewed them (gateway.leases). A
process killed mid-request cannot leak a slot: entries not renewed for `limits.lease_seconds()` are
dropped before anything is counted. The admission queue (`gateway.admission`) adds members through its own
script, in the same step as it grants a queued request its slot; these functions are the plain
primitives for everything else (routing, balancing across replicas, tests).
"""
from __future__ import annotations

import asyncio
import time

from django.conf import settings

from accounts.limits import lease_seconds, max_request_seconds, server_inflight_key
from sparkportal.lib.respipe import PipelinedRedis, Script

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
"""

_COUNTS = """
local out = {}
local cutoff = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  out[i] = redis.call('ZCARD', key)
end
return out
"""

_RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


class _Client:
    """One pipelined connection per event loop (a process has one; test loops come and go)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> _Client:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.redis = PipelinedRedis(settings.REDIS_URL)
            self.acquire = Script(self.redis, _ACQUIRE)
            self.release = Script(self.redis, _RELEASE)
            self.counts = Script(self.redis, _COUNTS)
            self.loop = loop
        return self


_client = _Client()


async def inflight_acquire(server_id: int, request_id: str) -> None:
    """Count `request_id` as running on `server_id` (idempotent: the same id counts once); its holder renews
    it (gateway.leases) or it stops counting after the lease."""
    client = _client.get()
    await client.acquire([server_inflight_key(server_id)], [request_id, time.time(), max_request_seconds(),
                                                                lease_seconds()])


async def inflight_release(server_id: int, request_id: str) -> None:
    """The request ended (answered, failed or its client went away); releasing twice is harmless."""
    client = _client.get()
    await client.release([server_inflight_key(server_id)], [request_id])


async def inflight_counts(server_ids: list[int]) -> dict[int, int]:
    """Requests in flight per server across all gateway processes, stale entries dropped first."""
    if not server_ids:
        return {}
    client = _client.get()
    counts = await client.counts([server_inflight_key(s) for s in server_ids], [time.time() - lease_seconds()])
    return {server_id: int(n) for server_id, n in zip(server_ids, counts, strict=True)}
