"""The fair queue's Redis scripts: every grant happens inside one of them, so processes never race.

Layout per model (prefix P = portal:fq:m:<model>:), all expiring after the longest allowed request:
  P..'flows'   ZSET flow -> virtual start tag of the flow's head request (flows with requests waiting)
  P..'f:'flow  LIST the flow's waiting tickets, oldest first (FIFO within a flow)
  P..'meta'    HASH ticket -> "user|concurrency limit|deadline|team:limit,team:limit" of a waiting ticket
  P..'w'       HASH flow -> weight;  P..'last' HASH flow -> finish tag of its last grant;  P..'V' virtual time
  P..'granted' HASH ticket -> server id, for grants made by another process's script
A granted ticket is a member of its server's in-flight set (accounts.limits.server_inflight_key, the one
gateway.inflight counts), of its user's running set (RUNNING_KEY) and of each of its teams' (TEAM_KEY),
renewed by the holding process (gateway.leases): entries older than the lease are dropped before counting.

Scheduling is start-time fair queuing: a flow's next request gets start tag max(V, finish of its last
grant), the smallest tag is served first and each grant advances the flow by 1/weight. So flows of
weights 3 and 1 get grants 3:1 while both wait, and a flow that arrives with one request gets tag V:
ahead of every backlogged flow, it waits for the next free slot only.
"""
from __future__ import annotations

PREFIX = "portal:fq:m:"  # + model + ':' + the keys below
RUNNING_KEY = "portal:fq:run:{user_id}"
TEAM_KEY = "portal:fq:team:{team_id}"

# ARGV: prefix, now, key lifetime, lease, own ticket prefix, n servers, (server id, capacity) x n,
# then the script's own.
_COMMON = """
local P = ARGV[1]
local now = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local mine = ARGV[5]
local ns = tonumber(ARGV[6])
local servers = {}
for i = 1, ns do servers[i] = {ARGV[5 + 2 * i], tonumber(ARGV[6 + 2 * i])} end
local A = 7 + 2 * ns

local function skey(sid) return 'portal:srv:' .. sid .. ':inflight' end
local function rkey(uid) return 'portal:fq:run:' .. uid end
local function tkey(tid) return 'portal:fq:team:' .. tid end

-- Below its concurrency limit (-1: none), stale entries dropped first.
local function room(key, limit)
  if limit < 0 then return true end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - lease)
  return redis.call('ZCARD', key) < limit
end

local function touch()
  for _, k in ipairs({'flows', 'meta', 'w', 'last', 'V', 'granted'}) do
    redis.call('EXPIRE', P .. k, stale)
  end
end

-- The head of a flow that may be granted now: expired and withdrawn tickets are dropped on the way.
-- Returns ticket, user, teams ({id...}), or false when the flow is empty; ticket, nil when its user or one
-- of its teams is at its concurrency limit.
local function head(flow)
  local fl = P .. 'f:' .. flow
  while true do
    local ticket = redis.call('LINDEX', fl, 0)
    if not ticket then return false end
    local meta = redis.call('HGET', P .. 'meta', ticket)
    if meta then
      local uid, limit, deadline, teams = string.match(meta, '([^|]*)|([^|]*)|([^|]*)|?([^|]*)')
      if tonumber(deadline) >= now then
        if not room(rkey(uid), tonumber(limit)) then return ticket, nil end
        local tids = {}
        for tid, tlimit in string.gmatch(teams, '(%d+):(-?%d+)') do
          if not room(tkey(tid), tonumber(tlimit)) then return ticket, nil end
          tids[#tids + 1] = tid
        end
        return ticket, uid, tids
      end
      redis.call('HDEL', P .. 'meta', ticket)  -- past its deadline: its waiter answers 429 itself
    end
    redis.call('LPOP', fl)
  end
end

local function pump()
  local out = {}
  local load = {}
  for i, s in ipairs(servers) do
    redis.call('ZREMRANGEBYSCORE', skey(s[1]), '-inf', now - lease)
    load[i] = redis.call('ZCARD', skey(s[1]))
  end
  while true do
    local best = nil
    for i, s in ipairs(servers) do
      if load[i] < s[2] and (best == nil or load[i] < load[best]) then best = i end
    end
    if best == nil then break end
    local flows = redis.call('ZRANGE', P .. 'flows', 0, 127, 'WITHSCORES')
    local chosen = nil
    for j = 1, #flows, 2 do
      local ticket, uid, tids = head(flows[j])
      if not ticket then
        redis.call('ZREM', P .. 'flows', flows[j])
      elseif uid then
        chosen = {flows[j], tonumber(flows[j + 1]), ticket, uid, tids}
        break
      end
    end
    if chosen == nil then break end
    local flow, tag, ticket, uid = chosen[1], chosen[2], chosen[3], chosen[4]
    for _, tid in ipairs(chosen[5]) do
      redis.call('ZADD', tkey(tid), now, ticket)
      redis.call('EXPIRE', tkey(tid), stale)
    end
    local fl = P .. 'f:' .. flow
    redis.call('LPOP', fl)
    redis.call('HDEL', P .. 'meta', ticket)
    local sid = servers[best][1]
    redis.call('ZADD', skey(sid), now, ticket)
    redis.call('EXPIRE', skey(sid), stale)
    redis.call('ZADD', rkey(uid), now, ticket)
    redis.call('EXPIRE', rkey(uid), stale)
    load[best] = load[best] + 1
    local weight = tonumber(redis.call('HGET', P .. 'w', flow) or '1')
    local finish = tag + 1.0 / weight
    if tag > tonumber(redis.call('GET', P .. 'V') or '0') then redis.call('SET', P .. 'V', tag) end
    redis.call('HSET', P .. 'last', flow, finish)
    if redis.call('LLEN', fl) > 0 then
      redis.call('ZADD', P .. 'flows', finish, flow)
    else
      redis.call('ZREM', P .. 'flows', flow)
    end
    if string.sub(ticket, 1, #mine) == mine then
      out[#out + 1] = ticket
      out[#out + 1] = sid
    else
      redis.call('HSET', P .. 'granted', ticket, sid)
    end
  end
  return out
end
"""

# ARGV[A..]: ticket, flow, weight, user, concurrency limit (-1: none), deadline, teams ("id:limit,...").
ENTER = _COMMON + """
local ticket, flow, weight = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local uid, limit, deadline, teams = ARGV[A + 3], ARGV[A + 4], ARGV[A + 5], ARGV[A + 6]
local fl = P .. 'f:' .. flow
redis.call('HSET', P .. 'meta', ticket, uid .. '|' .. limit .. '|' .. deadline .. '|' .. teams)
redis.call('HSET', P .. 'w', flow, weight)
redis.call('RPUSH', fl, ticket)
redis.call('EXPIRE', fl, stale)
if not redis.call('ZSCORE', P .. 'flows', flow) then
  local v = tonumber(redis.call('GET', P .. 'V') or '0')
  local last = tonumber(redis.call('HGET', P .. 'last', flow) or '0')
  -- A flow with nothing queued starts at V, just ahead of the backlogged flows whose tag is V too:
  -- so it waits for one free slot, not for every heavy flow in the same round.
  local start = math.max(v, last)
  if start == v then start = v - 0.000001 end
  redis.call('ZADD', P .. 'flows', start, flow)
end
touch()
return pump()
"""

# ARGV[A..]: this process's waiting tickets of the model. Grants made elsewhere are collected here.
POLL = _COMMON + """
local out = pump()
for i = A, #ARGV do
  local sid = redis.call('HGET', P .. 'granted', ARGV[i])
  if sid then
    redis.call('HDEL', P .. 'granted', ARGV[i])
    out[#out + 1] = ARGV[i]
    out[#out + 1] = sid
  end
end
return out
"""

# ARGV[A..]: ticket, server id, user, then its team ids. The slot is free: hand it to the next in line.
RELEASE = _COMMON + """
redis.call('ZREM', skey(ARGV[A + 1]), ARGV[A])
redis.call('ZREM', rkey(ARGV[A + 2]), ARGV[A])
for i = A + 3, #ARGV do redis.call('ZREM', tkey(ARGV[i]), ARGV[A]) end
return pump()
"""

# ARGV[1..]: prefix, ticket, flow. Leave the queue; a grant that raced the leave is returned to release.
LEAVE = """
local P, ticket, flow = ARGV[1], ARGV[2], ARGV[3]
local sid = redis.call('HGET', P .. 'granted', ticket)
if sid then
  redis.call('HDEL', P .. 'granted', ticket)
  return sid
end
redis.call('HDEL', P .. 'meta', ticket)
local fl = P .. 'f:' .. flow
redis.call('LREM', fl, 1, ticket)
if redis.call('LLEN', fl) == 0 then redis.call('ZREM', P .. 'flows', flow) end
return false
"""
