"""An ASGI wrapper that refuses request bodies over a per-path limit with a 413, before they are stored.

Django's ASGI handler reads the whole body into a spooled temporary file (on disk past 2.5 MB) before any
view runs, and the multipart parser then writes each large file to disk again: a size check in the view
comes after the disk has taken it all. This wrapper stops first: a declared Content-Length over the limit
is answered at once, and a body that streams past it is cut off (the app sees the client go away) and
answered with the 413.
"""
import json
from collections.abc import Awaitable, Callable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit_for(limits: list[tuple[str, int]], path: str) -> int | None:
    """The limit of the first prefix that matches `path`, or None (no limit here)."""
    return next((limit for prefix, limit in limits if path.startswith(prefix)), None)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"The request body is larger than {limit // 2**20 or 1} MB, the limit here: "
                                 "send less (fewer or smaller files).", "code": "too_large"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def body_limit_wrap(app: App, limits_of: Callable[[], list[tuple[str, int]]]) -> App:
    """`limits_of()` gives [(path prefix, max bytes)], read per request so settings changes apply."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        limit = body_limit_for(limits_of(), scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            return await app(scope, receive, send)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, limit)
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive() -> dict:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            if not state["over"]:
                await send(message)

        await app(scope, counting_receive, tracking_send)
        if state["over"]:
            await _refuse(send, limit)

    return wrapped
