"""The in-process routing table: model name -> servers, refreshed from the database.

A request never waits for the database when the model is already known. The table is reloaded
as soon as a server changes status (`follow_server_status` listens to the servers' `server.status`
events on the channel layer), so a server that just became ready takes requests at once; as a
fallback for a lost event, a snapshot older than PORTAL_GATEWAY_ROUTES_TTL_S is refreshed in the
background, and a refresh is forced (and waited for) when the model is missing or its server just
refused a connection. Route objects keep their identity across refreshes so that the in-flight
counts used for least-outstanding balancing survive them.

Balancing across replicas (`choose`): the ready replica with the fewest requests in flight across every
gateway process (gateway.inflight, in Redis), ties taken in turn; a replica whose node's heartbeat is older
than PORTAL_NODE_STALE_S gets nothing while another replica's node is alive.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from django.conf import settings

from gateway import db, inflight, selectors
from sparkportal.lib.respipe import RedisUnavailable, ReplyError

log = logging.getLogger(__name__)

# channels_redis drops group members after a day (group_expiry); join again well before that.
GROUP_RENEW_S = 3600.0


class Route:
    __slots__ = ("server_id", "base", "inflight", "down_until", "node_seen")

    def __init__(self, server_id: int, base: str):
        self.server_id = server_id
        self.base = base
        self.inflight = 0
        self.down_until = 0.0
        self.node_seen: float | None = None  # its node's last heartbeat (epoch seconds)


class RoutingTable:
    def __init__(self) -> None:
        self.models: dict[str, selectors.ModelServers] = {}
        self.routes: dict[str, list[Route]] = {}
        self._by_server: dict[int, Route] = {}
        self.loaded_at = 0.0
        self.ttl = settings.PORTAL_GATEWAY_ROUTES_TTL_S
        self._refreshing: asyncio.Future | None = None
        self._turn = itertools.count()

    async def refresh(self) -> None:
        """One refresh at a time; concurrent callers share it."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._load())
        await asyncio.shield(self._refreshing)

    async def _load(self) -> None:
        snapshot = await db.run(selectors.routing_snapshot)
        by_server: dict[int, Route] = {}
        routes: dict[str, list[Route]] = {}
        for name, entry in snapshot.items():
            lst = []
            for server_id, base in entry.ready:
                route = self._by_server.get(server_id)
                if route is None or route.base != base:
                    route = Route(server_id, base)
                route.node_seen = entry.seen.get(server_id)
                by_server[server_id] = route
                lst.append(route)
            routes[name] = lst
        self.models, self.routes, self._by_server = snapshot, routes, by_server
        self.loaded_at = time.monotonic()

    async def reload(self) -> None:
        """A refresh that starts now: one already running may have read the rows before a change."""
        running = self._refreshing
        if running is not None and not running.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(running)
        await self.refresh()

    def maybe_refresh(self) -> None:
        if time.monotonic() - self.loaded_at > self.ttl and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(self._load())
            self._refreshing.add_done_callback(_consume)

    async def lookup(self, model: str) -> selectors.ModelServers | None:
        entry = self.models.get(model)
        if entry is None:
            await self.refresh()
            return self.models.get(model)
        self.maybe_refresh()
        return entry

    def candidates(self, model: str) -> list[Route]:
        """Ready replicas not refused lately, without those whose node's heartbeat stopped (unless all have: a
        stalled beat must not take every model down)."""
        now, wall = time.monotonic(), time.time()
        up = [r for r in self.routes.get(model, ()) if r.down_until <= now]
        stale = settings.PORTAL_NODE_STALE_S
        alive = [r for r in up if r.node_seen is None or wall - r.node_seen <= stale]
        return alive or up

    def pick(self, model: str) -> Route | None:
        """The ready replica with the fewest requests in flight from this process (no Redis round trip)."""
        return min(self.candidates(model), key=lambda r: r.inflight, default=None)

    async def choose(self, model: str) -> Route | None:
        """The ready replica with the fewest requests in flight across all gateway processes; ties in turn."""
        routes = self.candidates(model)
        if len(routes) < 2:
            return routes[0] if routes else None
        try:
            counts = await inflight.inflight_counts([r.server_id for r in routes])
        except (RedisUnavailable, ReplyError):  # Redis away: this process's own counts still balance
            counts = {r.server_id: r.inflight for r in routes}
        least = min(counts[r.server_id] for r in routes)
        tied = [r for r in routes if counts[r.server_id] == least]
        return tied[next(self._turn) % len(tied)]

    def route(self, server_id: int) -> Route | None:
        return self._by_server.get(server_id)

    def clear_down(self, server_id) -> None:
        route = self._by_server.get(server_id)
        if route is not None:
            route.down_until = 0.0

    def mark_down(self, route: Route) -> None:
        """A refused connection: skip this replica until the next snapshot says otherwise."""
        route.down_until = time.monotonic() + self.ttl
        self.loaded_at = 0.0


def _consume(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed background refresh is retried on the next request


async def follow_server_status(table: RoutingTable) -> None:
    """Reload `table` on every `server.status` event, for the life of the process.

    1. Join the servers' group on the channel layer with a channel of this process.
    2. Reload once: an event sent before the join would otherwise be missed.
    3. Per event, reload; a server that became ready is no longer skipped for an earlier refusal.
    A broken connection to Redis is retried every second; the TTL refresh covers the meantime.
    """
    from channels.layers import get_channel_layer

    from servers.events import SERVERS_GROUP

    layer = get_channel_layer()
    if layer is None:
        return
    while True:
        renew = None
        try:
            channel = await layer.new_channel("gateway.routes.")
            await layer.group_add(SERVERS_GROUP, channel)
            renew = asyncio.ensure_future(_stay_in_group(layer, SERVERS_GROUP, channel))
            await table.reload()
            while True:
                message = await layer.receive(channel)
                if message.get("event") != "server.status":
                    continue
                await table.reload()
                data = message.get("data") or {}
                if data.get("status") in selectors.READY:
                    table.clear_down(data.get("server_id"))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Redis or the database away: the TTL refresh still runs
            log.warning("routing table: lost the server status events; retrying", exc_info=True)
            await asyncio.sleep(1.0)
        finally:
            if renew is not None:
                renew.cancel()


async def _stay_in_group(layer, group: str, channel: str) -> None:
    while True:
        await asyncio.sleep(GROUP_RENEW_S)
        with contextlib.suppress(Exception):
            await layer.group_add(group, channel)
