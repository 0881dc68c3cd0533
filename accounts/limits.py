"""Gateway quotas, counted atomically in Redis, and the auth generation counter.

One Lua script per request (`QuotaEngine.acquire`) checks and counts, all or nothing:
requests in the last 60 seconds (a sliding log, so a burst straddling a minute boundary cannot pass
at twice the limit), tokens today (the request's worst case is reserved up front), requests in
flight. It also compares the caller's cached auth generation with the live one, so a revoked
key, a changed quota or a deactivated user takes effect on the very next request in every
gateway process (accounts.revocation says who bumps `AUTH_GEN_KEY` and what bounds a lost bump).
`settle` replaces the reservation with the engine's real usage and ends the in-flight entry.

Concurrency is a sorted set of request ids scored by the time their gateway process last renewed
them rather than a counter, so that a process killed mid-request cannot leak a slot: each process
renews the entries it holds every third of `lease_seconds()` (gateway.leases), and entries not
renewed for that long are dropped before counting.
"""
from __future__ import annotations

import calendar
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

AUTH_GEN_KEY = "portal:auth:gen"
UNLIMITED = -1

# KEYS: [1] auth generation, [2] the server's in-flight set, then 4 per subject (rpm log, tokens today,
# tokens this month, in-flight set). ARGV: generation, request id, reserve, now, key lifetime, subject count,
# lease (in-flight entries not renewed for this long are dropped), then
# 6 per subject (rpm, tokens/day, tokens/month, monthly budget, concurrency, track the month: 1/0).
# Every subject is checked before any is counted: a request refused by one team costs no other subject.
# A monthly budget stops requests once it is reached (reservations included), so the request that
# crosses 100% still finishes; a tokens-per-month limit, like tokens per day, refuses any request that
# could cross it.
_ACQUIRE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return {-1, gen, 0, 0, 0} end
local reserve, now, stale, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lease = tonumber(ARGV[7])
local function lim(i, j) return tonumber(ARGV[8 + 6 * i + j]) end
for i = 0, n - 1 do
  local k = 3 + 4 * i
  local rpm, tpd, tpm, budget, conc = lim(i, 0), lim(i, 1), lim(i, 2), lim(i, 3), lim(i, 4)
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now - lease)
    local c = redis.call('ZCARD', KEYS[k + 3])
    if c >= conc then return {3, gen, c, 1, i} end
  end
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - 60)
    local c = redis.call('ZCARD', KEYS[k])
    if c >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')[2]
      return {1, gen, c, math.ceil(tonumber(oldest or now) + 60 - now), i}
    end
  end
  if tpd >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    if used + reserve > tpd then return {2, gen, used, 0, i} end
  end
  if tpm >= 0 or budget >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
    if budget >= 0 and used >= budget then return {5, gen, used, 0, i} end
    if tpm >= 0 and used + reserve > tpm then return {4, gen, used, 0, i} end
  end
end
for i = 0, n - 1 do
  local k = 3 + 4 * i
  if lim(i, 0) >= 0 then
    redis.call('ZADD', KEYS[k], now, ARGV[2])
    redis.call('EXPIRE', KEYS[k], 61)
  end
  if reserve > 0 then
    redis.call('INCRBY', KEYS[k + 1], reserve)
    redis.call('EXPIRE', KEYS[k + 1], 172800)
    if lim(i, 5) == 1 then
      redis.call('INCRBY', KEYS[k + 2], reserve)
      redis.call('EXPIRE', KEYS[k + 2], 3456000)
    end
  end
  redis.call('ZADD', KEYS[k + 3], now, ARGV[2])
  redis.call('EXPIRE', KEYS[k + 3], stale)
end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], stale)
return {0, gen, 0, 0, 0}
"""

# KEYS: [1] the server's in-flight set, then 5 per subject (tokens today, tokens this month, in-flight set,
# warned-this-month flag, exhausted-this-month flag). ARGV: delta, request id, subject count, then 3 per
# subject (track the month: 1/0, warning level, exhaustion level; -1 for none). Returns the subjects whose
# month total crossed a level for the first time this month, as {index, 1 warned | 2 exhausted, total}...
_SETTLE = """
local delta, n = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[2])
local crossed = {}
for i = 0, n - 1 do
  local k, a = 2 + 5 * i, 4 + 3 * i
  if delta ~= 0 then redis.call('INCRBY', KEYS[k], delta) end
  if ARGV[a] == '1' then
    local total = redis.call('INCRBY', KEYS[k + 1], delta)
    local warn, stop = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    if stop >= 0 and total >= stop and redis.call('SET', KEYS[k + 4], '1', 'NX', 'EX', 3456000) then
      redis.call('SET', KEYS[k + 3], '1', 'NX', 'EX', 3456000)
      table.insert(crossed, i); table.insert(crossed, 2); table.insert(crossed, total)
    elseif warn >= 0 and total >= warn and redis.call('SET', KEYS[k + 3], '1', 'NX', 'EX', 3456000) then
      table.insert(crossed, i); table.insert(crossed, 1); table.insert(crossed, total)
    end
  end
  redis.call('ZREM', KEYS[k + 2], ARGV[2])
end
return crossed
"""

OK, STALE, RPM, TPD, CONCURRENT, TPM, BUDGET = 0, -1, 1, 2, 3, 4, 5
BUDGET_WARN_PERCENT = 80


@dataclass(slots=True)
class Limits:
    requests_per_minute: int = UNLIMITED
    tokens_per_day: int = UNLIMITED
    concurrent_requests: int = UNLIMITED


@dataclass(slots=True, frozen=True)
class TeamLimits:
    """A team the caller belongs to, counted in the same check as the caller's own limits."""

    team_id: int
    name: str
    requests_per_minute: int = UNLIMITED
    tokens_per_day: int = UNLIMITED
    tokens_per_month: int = UNLIMITED
    concurrent_requests: int = UNLIMITED
    monthly_token_budget: int = UNLIMITED
    queue_weight: int = 1  # multiplies its members' shares in the fair queue (not a limit: carried along)


@dataclass(slots=True, frozen=True)
class Crossing:
    """A team's month total reached 80% (`exhausted` False) or 100% of its budget for the first time."""

    team: TeamLimits
    exhausted: bool
    total: int


@dataclass(slots=True)
class Ticket:
    """What `acquire` counted, so that `settle` can undo the right keys (even across midnight)."""

    request_id: str
    tokens_key: str
    concurrency_key: str
    server_key: str
    reserved: int
    teams: tuple[TeamLimits, ...] = ()
    month: str = ""

    def held_keys(self) -> list[str]:
        """The in-flight sets `request_id` is a member of until settled: their holder renews it there."""
        keys = {self.server_key, self.concurrency_key, *(team_base(t.team_id) + "conc" for t in self.teams)}
        return sorted(keys)


@dataclass(slots=True)
class Verdict:
    outcome: int  # OK, STALE, RPM, TPD, CONCURRENT, TPM, BUDGET
    generation: str
    used: int = 0
    ticket: Ticket | None = None
    retry_after: int = 1
    team: TeamLimits | None = None  # the team whose limit refused; None: the caller's own limit


def server_inflight_key(server_id: int) -> str:
    return f"portal:srv:{server_id}:inflight"


def user_base(user_id: int) -> str:
    return f"portal:q:{user_id}:"


def team_base(team_id: int) -> str:
    return f"portal:q:team:{team_id}:"


def month_of(now: float) -> str:
    return time.strftime("%Y%m", time.gmtime(now))


def seconds_to_next_month(now: float) -> int:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return max(1, int(calendar.timegm((year, month, 1, 0, 0, 0)) - now))


def budget_levels(team: TeamLimits) -> tuple[int, int]:
    """(warning, exhaustion) token totals of a team's month; -1 where it has no budget."""
    budget = team.monthly_token_budget
    if budget < 0:
        return UNLIMITED, UNLIMITED
    return -(-budget * BUDGET_WARN_PERCENT // 100), budget


def max_request_seconds() -> int:
    """How long a key of running requests outlives its last write (its members expire sooner: lease_seconds)."""
    return settings.PORTAL_GATEWAY_REQUEST_TIMEOUT_S + 60


def lease_seconds() -> float:
    """An in-flight entry not renewed for this long belongs to a dead gateway process: it no longer counts."""
    return settings.PORTAL_GATEWAY_LEASE_S


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
                      server_id: int | None, teams: Sequence[TeamLimits] = ()) -> Verdict:
        """Check and count the caller and the given teams (the gateway passes the one team charged) at once:
        all pass and are counted, or none."""
        now = time.time()
        day, month = time.strftime("%Y%m%d", time.gmtime(now)), month_of(now)
        self._seq += 1
        request_id = f"{self._process}:{self._seq}"
        base = user_base(user_id)
        conc_key = base + "conc"
        tokens_key = base + "tpd:" + day
        server_key = server_inflight_key(server_id) if server_id is not None else conc_key
        keys = [AUTH_GEN_KEY, server_key, base + "rpm", tokens_key, base + "tpm:" + month, conc_key]
        args = [generation, request_id, int(reserve), now, self._stale, 1 + len(teams), lease_seconds(),
                limits.requests_per_minute, limits.tokens_per_day, UNLIMITED, UNLIMITED, limits.concurrent_requests, 0]
        for team in teams:
            tb = team_base(team.team_id)
            keys += [tb + "rpm", tb + "tpd:" + day, tb + "tpm:" + month, tb + "conc"]
            args += [team.requests_per_minute, team.tokens_per_day, team.tokens_per_month, team.monthly_token_budget,
                     team.concurrent_requests, 1]
        outcome, gen, used, wait, subject = await self._acquire(keys, args)
        gen = gen.decode() if isinstance(gen, bytes) else str(gen)
        verdict = Verdict(outcome=int(outcome), generation=gen, used=int(used))
        verdict.team = teams[int(subject) - 1] if int(subject) > 0 else None
        if verdict.outcome == OK:
            verdict.ticket = Ticket(request_id, tokens_key, conc_key, server_key, reserve, tuple(teams), month)
        elif verdict.outcome == RPM:
            verdict.retry_after = max(1, int(wait))
        elif verdict.outcome == TPD:
            verdict.retry_after = max(1, 86400 - int(now) % 86400)
        elif verdict.outcome in (TPM, BUDGET):
            verdict.retry_after = seconds_to_next_month(now)
        return verdict

    async def generation(self) -> str:
        """The live auth generation, for paths that count no quota (GET /v1/models)."""
        from sparkportal.lib.respipe import pack

        value = await self.redis.execute(pack(b"GET", AUTH_GEN_KEY))
        return value.decode() if value is not None else "0"

    async def settle(self, ticket: Ticket, *, actual_tokens: int) -> list[Crossing]:
        """Replace the reservation with the real usage; returns the team budgets this request carried past a level."""
        day = ticket.tokens_key.rsplit(":", 1)[1]
        keys = [ticket.server_key, ticket.tokens_key, ticket.tokens_key, ticket.concurrency_key,
                ticket.concurrency_key, ticket.concurrency_key]
        args = [actual_tokens - ticket.reserved, ticket.request_id, 1 + len(ticket.teams), "0", UNLIMITED, UNLIMITED]
        for team in ticket.teams:
            tb = team_base(team.team_id)
            keys += [tb + "tpd:" + day, tb + "tpm:" + ticket.month, tb + "conc", tb + "warned:" + ticket.month,
                     tb + "exhausted:" + ticket.month]
            args += ["1", *budget_levels(team)]
        crossed = await self._settle(keys, args) or []
        return [Crossing(ticket.teams[int(crossed[i]) - 1], int(crossed[i + 1]) == 2, int(crossed[i + 2]))
                for i in range(0, len(crossed), 3)]


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
    client.zremrangebyscore(key, "-inf", time.time() - lease_seconds())
    return int(client.zcard(key))


def tokens_used_today(user_id: int) -> int:
    day = time.strftime("%Y%m%d", time.gmtime())
    value = sync_redis().get(f"portal:q:{user_id}:tpd:{day}")
    return int(value) if value is not None else 0


def team_tokens_this_month(team_id: int) -> int:
    value = sync_redis().get(team_base(team_id) + "tpm:" + month_of(time.time()))
    return int(value) if value is not None else 0
