"""The in-process routing table: model name -> servers, refreshed from the database.

A request never waits for the database when the model is already known: a snapshot older than
PORTAL_GATEWAY_ROUTES_TTL_S is refreshed in the background, and a refresh is forced (and waited
for) only when the model is missing or its server just refused a connection. Route objects keep
their identity across refreshes so that the in-flight counts used for least-outstanding
balancing survive them.
"""
from __future__ import annotations

import asyncio
import time

from django.conf import settings

from gateway import db, selectors


class Route:
    __slots__ = ("server_id", "base", "inflight", "down_until")

    def __init__(self, server_id: int, base: str):
        self.server_id = server_id
        self.base = base
        self.inflight = 0
        self.down_until = 0.0


class RoutingTable:
    def __init__(self) -> None:
        self.models: dict[str, selectors.ModelServers] = {}
        self.routes: dict[str, list[Route]] = {}
        self._by_server: dict[int, Route] = {}
        self.loaded_at = 0.0
        self.ttl = settings.PORTAL_GATEWAY_ROUTES_TTL_S
        self._refreshing: asyncio.Future | None = None

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
                by_server[server_id] = route
                lst.append(route)
            routes[name] = lst
        self.models, self.routes, self._by_server = snapshot, routes, by_server
        self.loaded_at = time.monotonic()

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

    def pick(self, model: str) -> Route | None:
        """The ready replica with the fewest requests in flight (from this process)."""
        best = None
        now = time.monotonic()
        for route in self.routes.get(model, ()):
            if route.down_until > now:
                continue
            if best is None or route.inflight < best.inflight:
                best = route
        return best

    def mark_down(self, route: Route) -> None:
        """A refused connection: skip this replica until the next snapshot says otherwise."""
        route.down_until = time.monotonic() + self.ttl
        self.loaded_at = 0.0


def _consume(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed background refresh is retried on the next request
