"""This process's hold on the slots its live requests take: renewed in Redis, so a killed process lets go.

Every in-flight entry (a server's in-flight set, a user's or a team's running set, the quota's
concurrency sets) is a member scored by the time it was last renewed. One background task per process
renews all the entries it holds with one script call every third of PORTAL_GATEWAY_LEASE_S, however
many requests are running; whoever counts drops entries older than the lease first
(`accounts.limits.lease_seconds`). A process killed with SIGKILL stops renewing, and its slots come back
within one lease; a healthy stream of any length keeps its slot.
"""
from __future__ import annotations

import asyncio
import logging
import time

from accounts.limits import lease_seconds
from sparkportal.lib.respipe import PipelinedRedis, RedisUnavailable, ReplyError, Script

log = logging.getLogger(__name__)

# ZADD XX: an entry released meanwhile is not brought back.
_RENEW = """
local now = ARGV[1]
for i, key in ipairs(KEYS) do redis.call('ZADD', key, 'XX', now, ARGV[i + 1]) end
return #KEYS
"""


class Leases:
    def __init__(self, redis: PipelinedRedis) -> None:
        self._renew = Script(redis, _RENEW)
        self._held: dict[tuple[str, str], None] = {}
        self._task: asyncio.Task | None = None

    def hold(self, member: str, keys: list[str]) -> None:
        for key in keys:
            self._held[(key, member)] = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def drop(self, member: str, keys: list[str]) -> None:
        for key in keys:
            self._held.pop((key, member), None)

    def __len__(self) -> int:
        return len(self._held)

    async def renew(self) -> None:
        pairs = list(self._held)
        if pairs:
            await self._renew([key for key, _ in pairs], [time.time(), *(member for _, member in pairs)])

    async def _run(self) -> None:
        """Every third of the lease while anything is held: a missed renewal still leaves two before expiry."""
        while self._held:
            await asyncio.sleep(lease_seconds() / 3)
            try:
                await self.renew()
            except (RedisUnavailable, ReplyError):
                log.warning("could not renew %d in-flight entries; retrying", len(self._held), exc_info=True)
