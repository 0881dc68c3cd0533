"""Gateway quotas, counted atomically in Redis, and the auth generation counter.

One Lua script per request (`QuotaEngine.acquire`) checks and counts, all or nothing:
requests in the last 60 seconds (a sliding log, so a burst straddling a minute boundary cannot pass
at twice the limit), tokens today (the request's worst case is reserved up front), requests in
flight. It also compares the caller's cached auth generation with the live one, so a revoked
key, a changed quota or a deactivated user takes effect on the very next request in every
gateway process (accounts.revocation says who bumps `AUTH_GEN_KEY` and what bounds a lost bump).
`settle` replaces the reservation with the engine's real usage and ends the in-flight entry.

Concurrency is a sorted set of request ids scored by start time rather than a counter, so that a
process killed mid-request cannot leak a slot forever: entries older than the longest allowed
request are dropped before counting.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from django.conf import settings

AUTH_GEN_KEY = "portal:auth:gen"
UNLIMITED = -1

_ACQUIRE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return {-1, gen, 0, 0} end
local rpm, tpd, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local reserve, now, stale = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - stale)
  local n = redis.call('ZCARD', KEYS[4])
  if n >= conc then return {3, gen, n, 1} end
end
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
  local n = redis.call('ZCARD', KEYS[2])
  if n >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
    return {1, gen, n, math.ceil(tonumber(oldest or now) + 60 - now)}
  end
end
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if tpd >= 0 and used + reserve > tpd then return {2, gen, used, 0} end
if rpm >= 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('EXPIRE', KEYS[2], 61)
end
if reserve > 0 then
  redis.call('INCRBY', KEYS[3], reserve)
  redis.call('EXPIRE', KEYS[3], 172800)
end
redis.call('ZADD', KEYS[4], now, ARGV[5])
redis.call('EXPIRE', KEYS[4], stale)
if KEYS[5] ~= KEYS[4] then
  redis.call('ZADD', KEYS[5], now, ARGV[5])
  redis.call('EXPIRE', KEYS[5], stale)
end
return {0, gen, 0, 0}
"""

_SETTLE = """
local delta = tonumber(ARGV[1])
if delta ~= 0 then redis.call('INCRBY', KEYS[1], delta) end
redis.call('ZREM', KEYS[2], ARGV[2])
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[2]) end
return 0
"""

OK, STALE, RPM, TPD, CONCURRENT = 0, -1, 1, 2, 3


@dataclass(slots=True)
class Limits:
    requests_per_minute: int = UNLIMITED
    tokens_per_day: int = UNLIMITED
    concurrent_requests: int = UNLIMITED


@dataclass(slots=True)
class Ticket:
    """What `acquire` counted, so that `settle` can undo the right keys (even across midnight)."""

    request_id: str
    tokens_key: str
    concurrency_key: str
    server_key: str
    reserved: int


@dataclass(slots=True)
class Verdict:
    outcome: int  # OK, STALE, RPM, TPD, CONCURRENT
    generation: str
    used: int = 0
    ticket: Ticket | None = None
    retry_after: int = 1


def server_inflight_key(server_id: int) -> str:
    return f"portal:srv:{server_id}:inflight"


def max_request_seconds() -> int:
    return settings.PORTAL_GATEWAY_REQUEST_TIMEOUT_S + 60


class QuotaEngine:
    """Async side, used by the gateway (redis.asyncio client of the gateway process)."""

    def __init__(self, url: str):
        from sparkportal.lib.respipe import PipelinedRedis, Script

        self.redis = PipelinedRedis(url)
        self._acquire = Script(self.redis, _ACQUIRE)
        self._settle = Script(self.redis, _SETTLE)
        self._seq = 0
        # Request ids are members of the per-user logs: unique across processes and restarts.
        self._process = f"{settings.NODE_NAME}:{secrets.token_hex(4)}"
        self._stale = max_request_seconds()

    async def acquire(self, *, user_id: int, generation: str, limits: Limits, reserve: int,
                      server_id: int | None) -> Verdict:
        now = time.time()
        day = time.strftime("%Y%m%d", time.gmtime(now))
        self._seq += 1
        request_id = f"{self._process}:{self._seq}"
        base = f"portal:q:{user_id}:"
        conc_key = base + "conc"
        tokens_key = base + "tpd:" + day
        server_key = server_inflight_key(server_id) if server_id is not None else conc_key
        outcome, gen, used, wait = await self._acquire(
            [AUTH_GEN_KEY, base + "rpm", tokens_key, conc_key, server_key],
            [generation, limits.requests_per_minute, limits.tokens_per_day, limits.concurrent_requests,
             request_id, int(reserve), now, self._stale])
        gen = gen.decode() if isinstance(gen, bytes) else str(gen)
        verdict = Verdict(outcome=int(outcome), generation=gen, used=int(used))
        if verdict.outcome == OK:
            verdict.ticket = Ticket(request_id, tokens_key, conc_key, server_key, reserve)
        elif verdict.outcome == RPM:
            verdict.retry_after = max(1, int(wait))
        elif verdict.outcome == TPD:
            verdict.retry_after = max(1, 86400 - int(now) % 86400)
        return verdict

    async def generation(self) -> str:
        """The live auth generation, for paths that count no quota (GET /v1/models)."""
        from sparkportal.lib.respipe import pack

        value = await self.redis.execute(pack(b"GET", AUTH_GEN_KEY))
        return value.decode() if value is not None else "0"

    async def settle(self, ticket: Ticket, *, actual_tokens: int) -> None:
        await self._settle([ticket.tokens_key, ticket.concurrency_key, ticket.server_key],
                           [actual_tokens - ticket.reserved, ticket.request_id])


def sync_redis():
    import redis

    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    return _sync_client


_sync_client = None


def server_inflight_count(server_id: int) -> int:
    """Requests in flight on a server across all gateway processes (idle unload asks this)."""
    client = sync_redis()
    key = server_inflight_key(server_id)
    client.zremrangebyscore(key, "-inf", time.time() - max_request_seconds())
    return int(client.zcard(key))


def tokens_used_today(user_id: int) -> int:
    day = time.strftime("%Y%m%d", time.gmtime())
    value = sync_redis().get(f"portal:q:{user_id}:tpd:{day}")
    return int(value) if value is not None else 0
