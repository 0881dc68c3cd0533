"""Load on demand: a request for a stopped model marked "load on demand", or for a sleeping one, asks servers
to start or wake its server (servers.services.server_ensure_ready; for a multi-node group's leader, every rank of
the group) and waits for it, streaming SSE comments to the client meanwhile.

All requests of this process that arrive while the model loads share one wait (one start call);
the service's row lock makes the start single across processes too.
"""
from __future__ import annotations

import asyncio
import time

from django.conf import settings

from gateway import db, errors, selectors
from gateway.routing import Route, RoutingTable
from servers import selectors as server_selectors
from servers import services as server_services
from sparkportal.exceptions import ApplicationError

# A fresh start shows up as queued/starting in the next snapshot; give a slow worker this long.
_APPEAR_S = 15.0


class Loader:
    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self._loads: dict[str, asyncio.Future] = {}

    def server_for(self, entry: selectors.ModelServers) -> int:
        """The server a request for a model with no ready replica will wait for, or a 503 saying why not."""
        if entry.starting:
            return entry.starting[0]
        if entry.sleeping:
            return entry.sleeping[0]
        if entry.loadable:
            return entry.loadable[0]
        name = entry.name
        if entry.stopping:
            raise errors.unavailable(f"The model `{name}` is being stopped right now: retry in a minute, or ask an "
                                     "operator to start it again.", retry_after=30)
        if entry.idle:
            raise errors.unavailable(f"The model `{name}` is not running: an operator can start it on the Servers "
                                     "page, or mark its server (or its multi-node group) \"load on demand\".")
        raise errors.unavailable(f"The model `{name}` has a profile but no server yet: an operator can create and "
                                 "start one on the Servers page.")

    async def wait(self, entry: selectors.ModelServers, send, call, *, stream: bool) -> Route:
        name = entry.name
        future = self._loads.get(name)
        if future is None or future.done():
            future = self._loads[name] = asyncio.ensure_future(self._load(entry, call.principal.user_id))
        if stream and not call.started:
            await send({"type": "http.response.start", "status": 200, "headers": _sse_headers()})
            call.started = True
        note = f": {'waking' if entry.sleeping else 'loading'} {name}, please wait\n\n".encode()
        while True:
            done, _pending = await asyncio.wait({future}, timeout=settings.PORTAL_GATEWAY_KEEPALIVE_S)
            if done:
                return future.result()
            if stream:
                await send({"type": "http.response.body", "body": note, "more_body": True})

    async def _load(self, entry: selectors.ModelServers, user_id: int) -> Route:
        name = entry.name
        target = (entry.starting or entry.sleeping or entry.loadable)[0]
        if not entry.starting:
            try:
                await db.run(server_services.server_ensure_ready, server_id=target, user_id=user_id)
            except ApplicationError as exc:
                raise errors.unavailable(f"Could not load `{name}` on demand: {exc.message}",
                                         code="model_load_refused") from None
        began = time.monotonic()
        seen_starting = False
        while time.monotonic() - began < settings.PORTAL_GATEWAY_LOAD_TIMEOUT_S:
            await asyncio.sleep(0.25)
            await self.table.refresh()
            route = self.table.pick(name)
            if route is not None:
                return route
            current = self.table.models.get(name)
            if current is not None and current.starting:
                seen_starting = True
                continue
            if seen_starting or time.monotonic() - began > _APPEAR_S:
                reason = await db.run(server_selectors.server_failure_reason, server_id=target)
                raise errors.unavailable(f"The server of `{name}` did not come up: {reason}. An operator can see "
                                         "its log on the Servers page.", code="model_load_failed")
        raise errors.unavailable(f"`{name}` is still loading after {settings.PORTAL_GATEWAY_LOAD_TIMEOUT_S} s: "
                                 "retry later.", code="model_load_timeout", retry_after=30)


def _sse_headers():
    from gateway.proxy import SSE_HEADERS

    return SSE_HEADERS
