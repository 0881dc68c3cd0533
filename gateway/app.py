"""The OpenAI-compatible /v1 hot path as a bare ASGI app, dispatched before Django.

Per request: key -> principal from an in-process cache (hash lookup; a generation counter in
Redis, checked inside the quota script, invalidates it at once on any key/user/quota change, and
no entry outlives PORTAL_AUTH_CACHE_TTL_S: see accounts.revocation), model -> ready server from
the in-process routing table (least in flight), one Lua script for all quotas, bytes relayed as
they arrive (gateway.proxy), quota settled to the engine's usage, one ledger row appended for the
background writer. No Django middleware, no ORM on the path.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from datetime import UTC, datetime

import orjson
from django.conf import settings

from accounts import limits, revocation
from accounts.teams import services as team_services
from gateway import clients, content_log, db, errors, inflight, loading, proxy, routing, selectors
from gateway.admission import Admission, Grant, QueueTimeout, flow_of, team_limits_of, weight_of
from gateway.errors import GatewayError
from gateway.leases import Leases
from gateway.routing import RoutingTable
from gateway.usage.ledger import Ledger
from sparkportal.exceptions import AuthenticationFailed
from sparkportal.lib.clientip import scope_client_ip
from sparkportal.lib.respipe import RedisUnavailable, ReplyError

log = logging.getLogger(__name__)

# path -> (ledger endpoint name, generates tokens, quota counts its prompt)
ENDPOINTS = {
    "/v1/chat/completions": ("chat/completions", True, True),
    "/v1/completions": ("completions", True, True),
    "/v1/embeddings": ("embeddings", False, True),
    "/v1/rerank": ("rerank", False, True),
    "/rerank": ("rerank", False, True),
    "/v1/score": ("score", False, True),
    "/tokenize": ("tokenize", False, False),
    "/detokenize": ("detokenize", False, False),
}
ROOT_PATHS = frozenset(p for p in ENDPOINTS if not p.startswith("/v1/"))
KNOWN = ", ".join(["/v1/models", *ENDPOINTS])
MAX_CACHED_KEYS = 10_000
# A request that waited the whole queue deadline is told to come back after a short pause, not at once.
QUEUE_RETRY_AFTER_S = 5
_JSON = [(b"content-type", b"application/json")]


def handles(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1" or path in ROOT_PATHS


class Gateway:
    def __init__(self) -> None:
        self.started = False

    def _start(self) -> None:
        self.quota = limits.QuotaEngine(settings.REDIS_URL)
        self.leases = Leases(self.quota.redis)
        self.admission = Admission(self.quota.redis, self.leases)
        self.session = clients.session_create()
        self.table = RoutingTable()
        self.ledger = Ledger()
        self.loader = loading.Loader(self.table)
        self.keys: revocation.PrincipalCache[selectors.Principal] = revocation.PrincipalCache(
            max_entries=MAX_CACHED_KEYS)
        self.follower = asyncio.ensure_future(routing.follow_server_status(self.table))
        self.started = True
        _register_shutdown(self)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self.started:
            self._start()
        call = proxy.Call(time.perf_counter(), datetime.now(UTC))
        try:
            await self._handle(scope, receive, send, call)
        except GatewayError as exc:
            if call.principal is not None and not call.recorded and call.endpoint:
                call.status, call.error_code = exc.status, exc.code
                self._record(call.principal, call, scope)
            await _send_error(send, exc, call)

    # -- the request ----------------------------------------------------------------------------
    async def _handle(self, scope, receive, send, call: proxy.Call) -> None:
        call.principal = principal = await self._authenticate(scope)
        path = scope["path"]
        if path == "/v1/models" or path.startswith("/v1/models/"):
            if scope["method"] != "GET":
                raise GatewayError(405, f"Use GET on {path}.", type="invalid_request_error", code="method_not_allowed")
            principal = await self._current(scope, principal)
            await self._models(send, principal, path[len("/v1/models/"):] if path != "/v1/models" else None)
            return
        spec = ENDPOINTS.get(path)
        if spec is None:
            raise errors.not_found(f"The gateway has no endpoint {path}: it serves {KNOWN}.",
                                   code="unknown_endpoint", param=None)
        if scope["method"] != "POST":
            raise GatewayError(405, f"Use POST on {path}.", type="invalid_request_error", code="method_not_allowed")
        call.endpoint, generates, counts_prompt = spec
        body = await _read_body(scope, receive, limit=settings.PORTAL_GATEWAY_MAX_BODY_BYTES)
        req = _parse(body)
        call.model = model = _check_model_name(req.get("model"))
        _check_allowed(principal, model)
        entry = await self.table.lookup(model)
        if entry is None:
            raise _unknown_model(model)
        route = await self.table.choose(model)
        if route is None and not (entry.starting or entry.loadable or entry.sleeping):
            # About to refuse on a snapshot: make it current first (an operator may have just marked the
            # server "load on demand", which sends no status event). Only refusals pay this query.
            await self.table.reload()
            entry = self.table.models.get(model)
            if entry is None:
                raise _unknown_model(model)
            route = await self.table.choose(model)
        server_id = route.server_id if route is not None else self.loader.server_for(entry)
        call.server_id = server_id
        call.stream = stream = generates and req.get("stream") is True
        want_usage = True
        if stream:
            body, want_usage = _ask_for_usage(req, body)
        call.prompt_estimate = len(body) // 4 if counts_prompt else 0
        reserve = _reserve(req, body, entry.max_model_len, generates, counts_prompt)
        if content_log.enabled():
            content_log.request(username=principal.username, model=model, endpoint=call.endpoint, body=body)
            call.capture = []
        # Requests take their slot in the fair queue, which also holds the user's and teams' concurrency; one
        # for a model still to be loaded waits for the load first, then queues for a slot like the rest.
        queued = settings.PORTAL_QUEUE_ENABLED
        ticket = await self._acquire(scope, principal, reserve, call, queued=queued)
        principal = call.principal  # reloaded when a key or quota changed meanwhile
        self.leases.hold(ticket.request_id, ticket.held_keys())
        slot = _Slot(ticket.request_id, self.admission, self.leases)
        watch = _Watch(receive)
        try:
            if route is None:
                await slot.hold(call.server_id)  # counted on the server being loaded: idle stop leaves it alone
                route = await self.loader.wait(entry, send, call, stream=stream)
                call.server_id = route.server_id
                entry = self.table.models.get(model) or entry
            if queued:
                await slot.release()  # the loading hold, if any, becomes the queue's grant
                slot.granted(await self._admit(send, principal, entry, call, stream=stream))
                route = self.table.route(slot.server_id) or route
                call.server_id = route.server_id
            await slot.hold(call.server_id)
            await self._forward(send, route, path, body, call, stream=stream, want_usage=want_usage,
                                generates=generates or counts_prompt, ticket=ticket, watch=watch,
                                slot=slot)
        except asyncio.CancelledError:
            call.status = call.status if call.status >= 400 else 499
            call.error_code = "client_disconnected" if watch.disconnected else "server_shutdown"
            await self._settle(ticket, call)
        except GatewayError as exc:
            call.status, call.error_code = exc.status, exc.code
            await self._settle(ticket, call)
            if call.started:
                await send({"type": "http.response.body", "body": b"data: " + exc.body() + b"\n\n",
                            "more_body": False})
            else:
                raise
        finally:
            watch.stop()
            await slot.release()
            if call.capture is not None:
                content_log.answer(username=principal.username, model=model, status=call.status,
                                   data=b"".join(call.capture))
            self._record(principal, call, scope)

    async def _forward(self, send, route, path, body, call, *, stream, want_usage, generates, ticket, watch,
                       slot) -> None:
        for attempt in (0, 1):
            url = route.base + path
            held = route
            held.inflight += 1
            await slot.hold(route.server_id)
            try:
                if stream:
                    await proxy.relay_stream(self.session, send, url, body, call, want_usage=want_usage)
                    watch.stop()  # all relayed: a client that hangs up after [DONE] is no abort
                    await self._finish(slot, ticket, call)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    status, ctype, data = await proxy.fetch_json(self.session, url, body, call, usage=generates)
                    if call.capture is not None:
                        content_log.keep(call.capture, data)
                    watch.stop()
                    await self._finish(slot, ticket, call)
                    await send({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())]})
                    call.started = True
                    await send({"type": "http.response.body", "body": data})
                return
            except clients.ConnectError as exc:
                if call.started or call.events or attempt:
                    raise _lost(call, route, exc) from None
                if isinstance(exc, clients.RefusedError):
                    # Retry once on another replica (or on this one after a fresh snapshot).
                    self.table.mark_down(route)
                    await self.table.refresh()
                    route = await self.table.choose(call.model) or await self._wait_for_load(send, call, stream, exc)
                    call.server_id = route.server_id
                # else: a pooled keep-alive connection the engine had closed; retry as is
            except (TimeoutError, clients.ClientError) as exc:
                raise _lost(call, route, exc) from None
            finally:
                held.inflight -= 1

    async def _wait_for_load(self, send, call, stream: bool, exc: Exception):
        """The snapshot said ready but the server is gone: load it again if it is marked so, else 503."""
        entry = self.table.models.get(call.model)
        if entry is None or not (entry.starting or entry.loadable or entry.sleeping):
            raise _lost(call, None, exc)
        return await self.loader.wait(entry, send, call, stream=stream)

    async def _finish(self, slot: _Slot, ticket: limits.Ticket, call: proxy.Call) -> None:
        """The engine is done: its slot goes to the next in line at once, with the quota settled alongside."""
        await asyncio.gather(slot.release(), self._settle(ticket, call))

    async def _settle(self, ticket: limits.Ticket, call: proxy.Call) -> None:
        self.leases.drop(ticket.request_id, ticket.held_keys())
        try:
            crossed = await self.quota.settle(ticket, actual_tokens=call.tokens_spent())
        except (RedisUnavailable, ReplyError):
            # The answer is already on its way; a lost settlement only over-counts until the window ends.
            log.warning("could not settle the quota of a %s request", call.model, exc_info=True)
            return
        for crossing in crossed:  # rare: once per team and month, decided inside the settle script
            asyncio.ensure_future(db.run(team_services.team_budget_crossed, team_id=crossing.team.team_id,
                                         exhausted=crossing.exhausted, total=crossing.total))

    # -- who is calling -------------------------------------------------------------------------
    async def _authenticate(self, scope) -> selectors.Principal:
        raw = cookie = csrf = team = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                raw = value[7:] if value[:7].lower() == b"bearer " else value
            elif name == b"x-api-key":
                raw = raw or value
            elif name == b"cookie":
                cookie = value
            elif name == b"x-csrftoken":
                csrf = value
            elif name == b"x-portal-team":
                team = value
        if raw:
            raw = raw.strip()
            digest = hashlib.sha256(raw).hexdigest()
            principal = self.keys.get(digest)
            if principal is None:
                principal = await self._load_key(raw.decode("latin-1"), digest)
            if principal.expires_at is not None and principal.expires_at <= time.time():
                self.keys.drop(digest)
                raise errors.unauthorized(f"API key {principal.prefix}… has expired: create a new one on the Keys "
                                          "page.", code="expired_api_key")
            return principal
        if cookie and csrf:
            principal = await _session_principal(cookie, csrf, team)
            if principal is not None:
                return principal
        raise errors.unauthorized("No API key: send it as `Authorization: Bearer sk-sp-…` (create one on the Keys "
                                  "page of the portal).", code="missing_api_key")

    async def _load_key(self, raw: str, digest: str) -> selectors.Principal:
        try:
            principal = await db.run(selectors.principal_for_key, raw=raw)
        except AuthenticationFailed as exc:
            raise errors.unauthorized(exc.message, code=exc.code) from None
        self.keys.put(digest, principal, generation=principal.generation)
        return principal

    async def _current(self, scope, principal: selectors.Principal) -> selectors.Principal:
        """The caller as of the live generation, for paths that run no quota script (which checks it)."""
        try:
            live = await self.quota.generation()
        except (RedisUnavailable, ReplyError):
            return principal  # the cache lifetime still bounds a stale entry
        if live == principal.generation:
            return principal
        self.keys.clear()
        return await self._authenticate(scope)

    async def _admit(self, send, principal, entry, call, *, stream: bool) -> Grant:
        """Wait in the model's fair queue for a slot on one of its ready servers (gateway.admission)."""
        # The routing table's candidates: not refused lately, and not on a node whose heartbeat stopped.
        servers = [(r.server_id, entry.capacity.get(r.server_id, settings.PORTAL_QUEUE_DEFAULT_CAPACITY))
                   for r in self.table.candidates(entry.name)]
        note = f": queued for {entry.name}, please wait\n\n".encode()

        async def keepalive() -> None:
            if not stream:
                return
            if not call.started:
                await send({"type": "http.response.start", "status": 200, "headers": proxy.SSE_HEADERS})
                call.started = True
            await send({"type": "http.response.body", "body": note, "more_body": True})

        deadline = settings.PORTAL_QUEUE_DEADLINE_S
        try:
            return await self.admission.admit(
                ticket=self.admission.ticket(), model=entry.name, servers=servers, flow=flow_of(principal),
                weight=weight_of(principal), user_id=principal.user_id,
                limit=principal.limits.concurrent_requests, teams=team_limits_of(principal), deadline_s=deadline,
                on_wait=keepalive)
        except QueueTimeout:
            limit = principal.limits.concurrent_requests
            why = "its servers are running all the requests they can" + (
                f", or you are running your quota of {limit} at a time" if limit >= 0 else "") + "".join(
                f", or team {team.name} is running its {team.concurrent_requests} at a time"
                for team in principal.teams if team.concurrent_requests >= 0)
            raise errors.too_many(
                f"`{entry.name}` is busy: {why}, and this request waited {deadline:g} s in the queue "
                "(PORTAL_QUEUE_DEADLINE_S). Retry in a few seconds.",
                code="queue_timeout", retry_after=QUEUE_RETRY_AFTER_S) from None
        except (RedisUnavailable, ReplyError) as exc:
            raise errors.unavailable(f"The portal's Redis, which keeps the request queue, is not reachable ({exc}): "
                                     "tell an admin.", code="quota_store_unavailable", retry_after=5) from None

    async def _acquire(self, scope, principal, reserve, call, *, queued: bool) -> limits.Ticket:
        for _ in range(3):
            # Servers' in-flight counts are gateway.inflight's (_Slot), not the quota script's; a queued
            # request's concurrency, its user's and its teams', is the fair queue's to hold (it waits there
            # instead of a 429).
            lim, teams = principal.limits, principal.teams
            if queued:
                lim = dataclasses.replace(lim, concurrent_requests=limits.UNLIMITED)
                teams = tuple(dataclasses.replace(t, concurrent_requests=limits.UNLIMITED) for t in teams)
            try:
                verdict = await self.quota.acquire(user_id=principal.user_id, generation=principal.generation,
                                                   limits=lim, reserve=reserve, server_id=None, teams=teams)
            except RedisUnavailable as exc:
                raise errors.unavailable(f"The portal's Redis, which keeps quotas, is not reachable ({exc}): tell an "
                                         "admin.", code="quota_store_unavailable", retry_after=5) from None
            if verdict.outcome == limits.OK:
                return verdict.ticket
            if verdict.outcome != limits.STALE:
                refusal = _quota_error(verdict, principal, reserve)
                call.status, call.error_code = refusal.status, refusal.code  # the row says what the client got
                self._record(principal, call, scope)
                raise refusal
            # A key, user or quota changed somewhere: drop every cached principal, reload this one.
            self.keys.clear()
            principal = call.principal = await self._authenticate(scope)
            _check_allowed(principal, call.model)
        raise errors.unavailable("Keys are being changed right now; retry in a moment.", code="auth_busy",
                                 retry_after=1)

    # -- /v1/models -----------------------------------------------------------------------------
    async def _models(self, send, principal, one: str | None) -> None:
        if time.monotonic() - self.table.loaded_at > self.table.ttl:
            await self.table.refresh()
        data = []
        for name in sorted(self.table.models):
            entry = self.table.models[name]
            if not (entry.ready or entry.starting or entry.loadable or entry.sleeping):
                continue
            if (principal.scopes is not None and name not in principal.scopes) or (
                    principal.allowed is not None and name not in principal.allowed) or any(
                    name not in models for _team, models in principal.team_models):
                continue
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "sparkportal",
                         "max_model_len": entry.max_model_len,
                         "status": "ready" if entry.ready else ("loading" if entry.starting else
                                                                ("sleeping" if entry.sleeping else "loadable"))})
        if one is not None:
            found = next((m for m in data if m["id"] == one), None)
            if found is None:
                raise errors.not_found(f"The model `{one}` does not exist or is not available to this key: GET "
                                       "/v1/models lists yours.")
            body = orjson.dumps(found)
        else:
            body = orjson.dumps({"object": "list", "data": data})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- ledger ---------------------------------------------------------------------------------
    def _record(self, principal, call: proxy.Call, scope) -> None:
        call.recorded = True
        self.ledger.add({
            "user_id": principal.user_id, "username": principal.username, "api_key_id": principal.key_id,
            "key_prefix": principal.prefix, "team_id": principal.teams[0].team_id if principal.teams else None,
            "model": call.model[:200], "server_id": call.server_id,
            "endpoint": call.endpoint, "stream": call.stream, "status": call.status or 500,
            "error_code": call.error_code, "prompt_tokens": call.prompt_tokens,
            "cached_tokens": call.cached_tokens, "completion_tokens": call.completion_tokens,
            "ttft_ms": call.ttft * 1000 if call.ttft is not None else None,
            "duration_ms": (time.perf_counter() - call.t0) * 1000, "client_ip": scope_client_ip(scope),
            "created_at": call.created_at})

    # -- process life ---------------------------------------------------------------------------
    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.started:
                    self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.follower.cancel()
        try:
            await self.ledger.flush()
        finally:
            await self.session.close()


class _Slot:
    """The request's entry in one server's in-flight count (gateway.inflight), moved when the request is
    routed elsewhere and released however the request ends (answer, error, disconnect, shutdown). A slot
    the fair queue granted is given back through it, which hands it to the next in line."""

    __slots__ = ("request_id", "server_id", "admission", "leases", "grant")

    def __init__(self, request_id: str, admission: Admission, leases: Leases) -> None:
        self.request_id = request_id
        self.server_id: int | None = None
        self.admission = admission
        self.leases = leases
        self.grant: Grant | None = None

    def granted(self, grant: Grant) -> None:
        self.grant = grant
        self.request_id, self.server_id = grant.ticket, grant.server_id

    async def hold(self, server_id: int | None) -> None:
        if server_id == self.server_id:
            return
        if self.grant is not None:
            await self._move(server_id)
            return
        await self.release()
        if server_id is not None:
            try:
                await inflight.inflight_acquire(server_id, self.request_id)
            except (RedisUnavailable, ReplyError):
                # Only idle stop and balancing read the count: serving goes on without it.
                log.warning("could not count a request in flight on server %s", server_id, exc_info=True)
                return
            self.server_id = server_id
            self.leases.hold(self.request_id, [limits.server_inflight_key(server_id)])

    async def _move(self, server_id: int) -> None:
        """A granted request retried on another replica: its entry follows it."""
        self.leases.drop(self.request_id, [limits.server_inflight_key(self.server_id)])
        self.leases.hold(self.request_id, [limits.server_inflight_key(server_id)])
        try:
            await inflight.inflight_release(self.server_id, self.request_id)
            await inflight.inflight_acquire(server_id, self.request_id)
        except (RedisUnavailable, ReplyError):
            log.warning("could not move a request in flight to server %s", server_id, exc_info=True)
        self.server_id = self.grant.server_id = server_id

    async def release(self) -> None:
        server_id, self.server_id = self.server_id, None
        grant, self.grant = self.grant, None
        if server_id is None:
            return
        self.leases.drop(self.request_id, [limits.server_inflight_key(server_id)])
        release = self.admission.release(grant) if grant is not None else inflight.inflight_release(
            server_id, self.request_id)
        try:
            await asyncio.shield(release)
        except (RedisUnavailable, ReplyError, asyncio.CancelledError):
            # Left behind, the entry is no longer renewed: it stops counting after the lease (gateway.leases).
            log.warning("could not release a request in flight on server %s", server_id, exc_info=True)


class _Watch:
    """Turns the client's disconnect into a cancel of the request (and so of the upstream call)."""

    __slots__ = ("future", "task", "disconnected", "active")

    def __init__(self, receive) -> None:
        self.task = asyncio.current_task()
        self.disconnected = False
        self.active = True
        self.future = asyncio.ensure_future(receive())
        self.future.add_done_callback(self._done)

    def _done(self, future) -> None:
        if not self.active or future.cancelled() or future.exception() is not None:
            return
        if future.result().get("type") == "http.disconnect":
            self.disconnected = True
            self.task.cancel()

    def stop(self) -> None:
        self.active = False
        self.future.cancel()


async def _read_body(scope, receive, *, limit: int) -> bytes:
    """The whole request body, refused with a 413 as soon as it is declared or read past `limit` bytes."""
    declared = dict(scope.get("headers") or []).get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    message = await receive()
    parts, size = [message.get("body", b"")], len(message.get("body", b""))
    while message.get("more_body"):
        if size > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        parts.append(message.get("body", b""))
        size += len(parts[-1])
    if size > limit:
        raise _too_large(limit)
    return b"".join(parts)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit // 2**20 or 1} MB, the gateway's limit "
                             "(PORTAL_GATEWAY_MAX_BODY_BYTES): send a shorter prompt or fewer/smaller images.",
                        type="invalid_request_error", code="request_too_large")


def _parse(body: bytes) -> dict:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"The request body is not valid JSON ({exc}): send a JSON object with "
                                 "Content-Type: application/json.", code="invalid_json") from None
    if not isinstance(req, dict):
        raise errors.bad_request("The request body must be a JSON object with at least a \"model\" field.",
                                 code="invalid_json")
    return req


def _check_allowed(principal: selectors.Principal, model: str) -> None:
    if principal.scopes is not None and model not in principal.scopes:
        raise errors.forbidden(f"API key {principal.prefix}… may only use {', '.join(sorted(principal.scopes))}, "
                               f"not `{model}`: use one of those or create a key that includes it.")
    if principal.allowed is not None and model not in principal.allowed:
        raise errors.forbidden(f"Your account may not use `{model}`; it may use "
                               f"{', '.join(sorted(principal.allowed))}. Ask an admin to allow it in your quota.")
    for team, models in principal.team_models:
        if model not in models:
            raise errors.forbidden(f"Team {team} may not use `{model}`; it may use {', '.join(sorted(models))}. "
                                   "Ask an admin of the portal to allow it for the team.",
                                   code="model_not_allowed_for_team")


def _ask_for_usage(req: dict, body: bytes) -> tuple[bytes, bool]:
    """Make the engine report usage at the end of the stream; say whether the client asked for it."""
    options = req.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body, True
    if options is None:
        # Splice the option in after the opening brace: no re-serialisation of a large prompt.
        i = body.index(b"{") + 1
        return body[:i] + b'"stream_options":{"include_usage":true},' + body[i:], False
    req["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {
        "include_usage": True}
    return orjson.dumps(req), False


MAX_N = 128  # OpenAI's own ceiling for `n`; it also keeps a reservation far below 2**53


def _reserve(req: dict, body: bytes, max_model_len: int, generates: bool, counts_prompt: bool) -> int:
    """The most tokens this request can cost: prompt estimate + prompts x n x max_tokens.

    Without max_tokens each answer may fill the model's context after its prompt. A value that is not
    a positive integer is refused here: it would otherwise reach the quota script and fail there.
    """
    if not counts_prompt:
        return 0
    prompt = len(body) // 3 + 1  # over-estimate: a token is rarely shorter than 3 bytes of JSON
    if not generates:
        return prompt
    n = _positive_int(req, "n", ceiling=MAX_N) or 1
    prompts = _prompt_count(req.get("prompt"))
    per_prompt = prompt // prompts + 1
    max_tokens = _positive_int(req, "max_completion_tokens") or _positive_int(req, "max_tokens")
    answer = min(max_tokens, max_model_len) if max_tokens else max(1, max_model_len - per_prompt)
    return prompt + prompts * n * answer


def _positive_int(req: dict, field: str, *, ceiling: int | None = None) -> int | None:
    value = req.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        shown = orjson.dumps(value).decode()[:40]
        raise errors.bad_request(f'"{field}" must be a whole number of at least 1, not {shown}: send e.g. '
                                 f'"{field}": 1 or leave it out.', code="invalid_integer", param=field)
    if ceiling is not None and value > ceiling:
        raise errors.bad_request(f'"{field}" may be at most {ceiling}, not {value}: ask for fewer.',
                                 code="invalid_integer", param=field)
    return value


def _prompt_count(prompt) -> int:
    """How many prompts a /v1/completions `prompt` holds: a list of strings or of token lists is a batch."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return len(prompt)
    return 1


def _check_model_name(model: object) -> str:
    if not isinstance(model, str) or not model:
        raise errors.bad_request('Say which model to use in the "model" field; GET /v1/models lists yours.',
                                 code="model_missing", param="model")
    if len(model) > 200 or any(c < " " or c == "\x7f" for c in model):
        raise errors.bad_request('The "model" field must be a model name of at most 200 printable characters; '
                                 "GET /v1/models lists yours.", code="invalid_model_name", param="model")
    return model


def _quota_error(verdict: limits.Verdict, principal: selectors.Principal, reserve: int) -> GatewayError:
    if verdict.team is not None:
        return _team_quota_error(verdict, verdict.team, reserve)
    lim = principal.limits
    if verdict.outcome == limits.RPM:
        return errors.too_many(f"Quota: at most {lim.requests_per_minute} requests per minute; retry in "
                               f"{verdict.retry_after} s or ask an admin for a higher limit.",
                               code="requests_per_minute_exceeded", retry_after=verdict.retry_after)
    if verdict.outcome == limits.CONCURRENT:
        return errors.too_many(f"Quota: at most {lim.concurrent_requests} requests at a time and that many are "
                               "running; retry when one finishes.", code="concurrent_requests_exceeded",
                               retry_after=1)
    if reserve > lim.tokens_per_day:
        return GatewayError(400, f"This request could use up to {reserve} tokens, more than your daily limit of "
                                 f"{lim.tokens_per_day}: set a lower max_tokens or shorten the prompt.",
                            type="invalid_request_error", code="tokens_per_day_exceeded", param="max_tokens")
    return errors.too_many(f"Quota: {verdict.used} of your {lim.tokens_per_day} tokens for today are used or "
                           f"reserved and this request could need {reserve} more. Set a lower max_tokens, or retry "
                           f"after midnight UTC (in {verdict.retry_after} s).", code="tokens_per_day_exceeded",
                           retry_after=verdict.retry_after)


def _team_quota_error(verdict: limits.Verdict, team: limits.TeamLimits, reserve: int) -> GatewayError:
    """A team's limit refused: the message names the team, so members know whose share ran out."""
    name = team.name
    if verdict.outcome == limits.BUDGET:
        return GatewayError(403,
            f"Team {name} has used {verdict.used} of its monthly token budget of {team.monthly_token_budget}: the "
            f"team's requests are stopped until the month ends (in {verdict.retry_after} s). Ask an admin of the "
            "portal to raise the team's budget.", type="permission_error",
            code="team_budget_exhausted")
    if verdict.outcome == limits.RPM:
        return errors.too_many(f"Team quota: team {name} may send at most {team.requests_per_minute} requests per "
                               f"minute; retry in {verdict.retry_after} s.", code="team_requests_per_minute_exceeded",
                               retry_after=verdict.retry_after)
    if verdict.outcome == limits.CONCURRENT:
        return errors.too_many(f"Team quota: team {name} may run at most {team.concurrent_requests} requests at a "
                               "time and that many are running; retry when one finishes.",
                               code="team_concurrent_requests_exceeded", retry_after=1)
    period, limit = (("day", team.tokens_per_day) if verdict.outcome == limits.TPD
                     else ("month", team.tokens_per_month))
    return errors.too_many(f"Team quota: {verdict.used} of team {name}'s {limit} tokens for this {period} are used or "
                           f"reserved and this request could need {reserve} more. Set a lower max_tokens, or retry in "
                           f"{verdict.retry_after} s.", code=f"team_tokens_per_{period}_exceeded",
                           retry_after=verdict.retry_after)


def _unknown_model(model: str) -> GatewayError:
    return errors.not_found(f"The model `{model}` does not exist on this portal: GET /v1/models lists the models "
                            "you can use.")


def _lost(call: proxy.Call, route, exc: Exception) -> GatewayError:
    where = f" at {route.base}" if route is not None else ""
    return errors.unavailable(f"The server of `{call.model}`{where} is not answering ({type(exc).__name__}); it "
                              "may be restarting. Retry in a few seconds, or check it on the Servers page.",
                              code="upstream_unreachable", retry_after=5)


async def _send_error(send, exc: GatewayError, call: proxy.Call) -> None:
    if call.started:
        return
    body = exc.body()
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [*exc.headers(), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _session_principal(cookie: bytes, csrf: bytes, team: bytes | None) -> selectors.Principal | None:
    """The chat page's calls: the login session, with the CSRF cookie echoed in a header and the team to
    charge (a member of several picks one) in X-Portal-Team."""
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(cookie.decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie header is simply no session
        return None
    session = jar.get(settings.SESSION_COOKIE_NAME)
    token = jar.get(settings.CSRF_COOKIE_NAME)
    if session is None or token is None or token.value.encode() != csrf:
        return None
    team_id = None
    if team and team.strip():
        if not team.strip().isdigit() or len(team.strip()) > 18:
            raise errors.bad_request("X-Portal-Team must be the id of one of your teams.", code="invalid_team")
        team_id = int(team)
    try:
        return await db.run(selectors.principal_for_session, session_key=session.value, team_id=team_id)
    except AuthenticationFailed as exc:
        raise errors.forbidden(exc.message, code=exc.code) from None


def _register_shutdown(gateway: Gateway) -> None:
    """Flush the ledger on a clean stop: daphne (Twisted) has no ASGI lifespan, so hook its reactor;
    atexit catches whatever is left (other servers, or rows of requests cancelled at the end)."""
    import atexit
    import sys

    atexit.register(gateway.ledger.flush_now)
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and getattr(reactor, "running", False):
        from twisted.internet import defer

        def flush() -> defer.Deferred:
            return defer.Deferred.fromFuture(asyncio.ensure_future(gateway.shutdown()))

        reactor.addSystemEventTrigger("during", "shutdown", flush)


application = Gateway()
