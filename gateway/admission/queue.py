"""One gateway process's side of the fair queue: enter, wait for a grant, release (see scripts.py).

A request enters with one script call; when a slot is free and nobody is ahead of it, that same call
grants it (the uncontended path costs one round trip). Otherwise it waits on a future. Grants for this
process's tickets come back from the scripts this process runs (enter, release, poll); grants another
process's release made are picked up by a poll every PORTAL_QUEUE_POLL_S while this process has waiters.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings

from accounts.limits import lease_seconds, max_request_seconds, server_inflight_key
from gateway.admission import scripts
from gateway.leases import Leases
from sparkportal.lib.respipe import PipelinedRedis, RedisUnavailable, ReplyError, Script

log = logging.getLogger(__name__)


class QueueTimeout(Exception):
    """The deadline passed before a slot was free."""


@dataclass(slots=True)
class Grant:
    """A slot on one server, held until `Admission.release`."""

    ticket: str
    model: str
    server_id: int
    user_id: int
    teams: tuple[int, ...] = ()  # the teams whose running sets count it


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future
    model: str
    user_id: int
    servers: list[tuple[int, int]]
    teams: tuple[int, ...] = ()


class Admission:
    def __init__(self, redis: PipelinedRedis, leases: Leases) -> None:
        self.redis = redis
        self.leases = leases
        self._enter = Script(redis, scripts.ENTER)
        self._poll = Script(redis, scripts.POLL)
        self._release = Script(redis, scripts.RELEASE)
        self._leave = Script(redis, scripts.LEAVE)
        self.mine = f"fq:{settings.NODE_NAME}:{secrets.token_hex(4)}:"
        self._seq = 0
        self._waiters: dict[str, _Waiter] = {}
        self._servers: dict[str, list[tuple[int, int]]] = {}
        self._poller: asyncio.Task | None = None
        self.stale = max_request_seconds()

    def ticket(self) -> str:
        self._seq += 1
        return f"{self.mine}{self._seq}"

    async def admit(self, *, ticket: str, model: str, servers: list[tuple[int, int]], flow: str, weight: float,
                    user_id: int, limit: int, deadline_s: float, teams: list[tuple[int, int]] = (),
                    on_wait: Callable[[], Awaitable[None]] | None = None) -> Grant:
        """Wait for a slot on one of `servers` ((server id, capacity)); QueueTimeout after `deadline_s`.

        The user runs at most `limit` requests at once (-1: no limit), and each of `teams` ((team id, limit))
        at most its own: a request beyond one of them waits here too, letting other flows pass.

        `on_wait` runs every PORTAL_GATEWAY_KEEPALIVE_S while waiting (keep-alives for streams). A cancel
        (the client hung up) leaves the queue, or gives back a slot granted in the meantime."""
        self._servers[model] = servers
        future = asyncio.get_running_loop().create_future()
        team_ids = tuple(tid for tid, _ in teams)
        self._waiters[ticket] = _Waiter(future, model, user_id, servers, team_ids)
        try:
            granted = await self._enter([], [*self._args(model, servers), ticket, flow, weight, user_id, limit,
                                             time.time() + deadline_s, ",".join(f"{t}:{n}" for t, n in teams)])
            self._deliver(granted)
            if not future.done():
                self._ensure_poller()
                await self._wait(future, deadline_s, on_wait)
            return future.result()
        except BaseException as exc:
            await asyncio.shield(self._withdraw(ticket, model, flow, user_id))
            if isinstance(exc, TimeoutError):
                raise QueueTimeout from None
            raise
        finally:
            self._waiters.pop(ticket, None)

    async def _wait(self, future: asyncio.Future, deadline_s: float, on_wait) -> None:
        end = time.monotonic() + deadline_s
        step = settings.PORTAL_GATEWAY_KEEPALIVE_S
        while not future.done():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            done, _pending = await asyncio.wait({future}, timeout=min(step, left))
            if not done and on_wait is not None and end - time.monotonic() > 0:
                await on_wait()

    async def _withdraw(self, ticket: str, model: str, flow: str, user_id: int) -> None:
        """Leave the queue; a slot that was granted anyway (a race with the deadline or the hang-up) is freed."""
        waiter = self._waiters.pop(ticket, None)
        try:
            if waiter is not None and waiter.future.done() and not waiter.future.cancelled():
                await self.release(waiter.future.result())
                return
            sid = await self._leave_call(model, ticket, flow)
            if sid:
                teams = waiter.teams if waiter is not None else ()
                await self.release(Grant(ticket, model, int(sid), user_id, teams))
        except (RedisUnavailable, ReplyError):
            log.warning("could not leave the queue of %s; the entry expires at its deadline", model, exc_info=True)

    async def _leave_call(self, model: str, ticket: str, flow: str):
        return await self._leave([], [_prefix(model), ticket, flow])

    async def release(self, grant: Grant) -> None:
        """The request is over: free its slot and grant it to the next in line (at once if that one is ours)."""
        servers = self._servers.get(grant.model) or [(grant.server_id, 0)]
        self.leases.drop(grant.ticket, held_keys(grant))
        granted = await self._release([], [*self._args(grant.model, servers), grant.ticket, grant.server_id,
                                           grant.user_id, *grant.teams])
        self._deliver(granted)

    def _args(self, model: str, servers: list[tuple[int, int]]) -> list:
        flat = [x for pair in servers for x in pair]
        return [_prefix(model), time.time(), self.stale, lease_seconds(), self.mine, len(servers), *flat]

    def _deliver(self, granted) -> None:
        for i in range(0, len(granted or ()), 2):
            ticket, sid = granted[i].decode(), int(granted[i + 1])
            waiter = self._waiters.get(ticket)
            if waiter is not None and not waiter.future.done():
                grant = Grant(ticket, waiter.model, sid, waiter.user_id, waiter.teams)
                self.leases.hold(ticket, held_keys(grant))  # renewed while the request runs
                waiter.future.set_result(grant)
            else:
                # Nobody waits for it any more (gone between the grant and now): pass the slot on.
                orphan = Grant(ticket, waiter.model if waiter else "", sid, waiter.user_id if waiter else 0,
                               waiter.teams if waiter else ())
                asyncio.ensure_future(self._release_orphan(orphan))

    async def _release_orphan(self, grant: Grant) -> None:
        with contextlib.suppress(RedisUnavailable, ReplyError):
            await self.release(grant)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll_loop())

    async def _poll_loop(self) -> None:
        """While this process has waiters: one script per model every PORTAL_QUEUE_POLL_S."""
        while self._waiters:
            await asyncio.sleep(settings.PORTAL_QUEUE_POLL_S)
            by_model: dict[str, list[str]] = {}
            for ticket, waiter in list(self._waiters.items()):
                if not waiter.future.done():
                    by_model.setdefault(waiter.model, []).append(ticket)
            for model, tickets in by_model.items():
                try:
                    granted = await self._poll([], [*self._args(model, self._servers.get(model, [])), *tickets])
                except (RedisUnavailable, ReplyError):
                    log.warning("fair queue: polling %s failed; retrying", model, exc_info=True)
                    continue
                self._deliver(granted)


def held_keys(grant: Grant) -> list[str]:
    """The sets a granted ticket is a member of while it runs (see scripts.py)."""
    return [server_inflight_key(grant.server_id), scripts.RUNNING_KEY.format(user_id=grant.user_id),
            *(scripts.TEAM_KEY.format(team_id=t) for t in grant.teams)]


def _prefix(model: str) -> str:
    return f"{scripts.PREFIX}{model}:"
