"""Forwarding to an engine: bytes pass through as they arrive; only the usage is looked at.

A stream is relayed per socket read, not per event: whatever the engine's writes left in the
buffer goes out in one write to the client. The only inspection is a substring search for
`"usage":` in each read; the one event that carries it (the engine's last data event, asked for
with stream_options.include_usage) is parsed once at the end and dropped from the relay when the
client did not ask for it. Reads are cut at the last event boundary (a blank line) so that this
event is never split across two writes.
"""
from __future__ import annotations

import contextlib
import time

import orjson

from gateway import clients, content_log

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
_USAGE = b'"usage":'
_EMPTY_CHOICES = b'"choices":[]'


class Call:
    """One request's bookkeeping: what the ledger row and the quota settlement need."""

    __slots__ = ("t0", "created_at", "model", "endpoint", "stream", "status", "error_code", "prompt_tokens",
                 "cached_tokens", "completion_tokens", "ttft", "server_id", "started", "events", "usage_known",
                 "prompt_estimate", "principal", "recorded", "capture")

    def __init__(self, t0: float, created_at) -> None:
        self.t0 = t0
        self.created_at = created_at
        self.model = ""
        self.endpoint = ""
        self.stream = False
        self.status = 0
        self.error_code = ""
        self.prompt_tokens = 0
        self.cached_tokens = 0  # of the prompt tokens, those the engine's prefix cache held
        self.completion_tokens = 0
        self.ttft: float | None = None
        self.server_id: int | None = None
        self.started = False  # response headers sent
        self.events = 0
        self.usage_known = False
        self.prompt_estimate = 0
        self.principal = None
        self.recorded = False
        self.capture: list[bytes] | None = None  # the relayed answer, only while content logging is on

    def take_usage(self, usage) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self.cached_tokens = min(int(cached), self.prompt_tokens) if isinstance(cached, int) and cached > 0 else 0
            self.usage_known = True

    def tokens_spent(self) -> int:
        """Real usage when the engine reported it, else an estimate from what was relayed.

        The estimate is also written into the usage fields, so the ledger row shows what was charged.
        """
        if self.usage_known:
            return self.prompt_tokens + self.completion_tokens
        if self.status and self.status >= 400 and not self.events:
            return 0
        # Each relayed event but the first (the role) carries about one token.
        self.prompt_tokens, self.completion_tokens = self.prompt_estimate, max(0, self.events - 1)
        return self.prompt_tokens + self.completion_tokens


async def relay_stream(session, send, url: str, body: bytes, call: Call, *, want_usage: bool) -> None:
    """Relay an SSE stream; leaves the final (empty, more_body=False) write to the caller."""
    resp = await clients.post(session, url, body)
    try:
        if resp.status != 200:
            await _relay_error(send, resp, call)
            return
        if not call.started:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            call.started = True
        call.status = 200
        readany = resp.content.readany
        carry = b""
        usage_event = b""
        while True:
            data = await readany()
            if not data:
                break
            if call.ttft is None:
                call.ttft = time.perf_counter() - call.t0
            if carry:
                data = carry + data
                carry = b""
            if data[-2:] != b"\n\n":
                cut = data.rfind(b"\n\n") + 2
                if cut < 2:
                    carry = data
                    continue
                carry = data[cut:]
                data = data[:cut]
            # Counted as they pass, not at the end: a client or engine that hangs up mid-stream is
            # still charged for what was relayed.
            call.events += data.count(b"\n\n")
            i = data.rfind(_USAGE)
            if i >= 0:
                j = data.rfind(b"\n\n", 0, i)
                start = j + 2 if j >= 0 else 0
                end = data.find(b"\n\n", i) + 2
                usage_event = data[start:end]
                if not want_usage and _EMPTY_CHOICES in usage_event:
                    data = data[:start] + data[end:]
                    if not data:
                        continue
            if call.capture is not None:
                content_log.keep(call.capture, data)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        if carry:
            await send({"type": "http.response.body", "body": carry, "more_body": True})
        if usage_event:
            _take_usage_event(call, usage_event)
    except BaseException:
        resp.close()  # drop the connection: the engine sees the disconnect and aborts the request
        raise
    else:
        resp.release()


def _take_usage_event(call: Call, event: bytes) -> None:
    payload = event.strip()
    if payload.startswith(b"data:"):
        payload = payload[5:]
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        call.take_usage(orjson.loads(payload).get("usage"))


async def fetch_json(session, url: str, body: bytes, call: Call, *, usage: bool) -> tuple[int, bytes, bytes]:
    """A non-streamed call: (status, content type, body); usage read from the body when asked."""
    resp = await clients.post(session, url, body)
    try:
        data = await resp.read()
    except BaseException:
        resp.close()
        raise
    resp.release()
    call.ttft = time.perf_counter() - call.t0
    call.status = resp.status
    ctype = resp.headers.get("Content-Type", "application/json").encode()
    if resp.status >= 400:
        call.error_code = f"upstream_{resp.status}"
    elif usage:
        try:
            parsed = orjson.loads(data)
            call.take_usage(parsed.get("usage") if isinstance(parsed, dict) else None)
        except orjson.JSONDecodeError:
            pass
        if not call.usage_known:
            # TEI's native routes (/rerank, /embed) answer bare lists: the tokens are in a header.
            tokens = resp.headers.get("x-compute-tokens")
            if tokens is not None and tokens.isdigit():
                call.take_usage({"prompt_tokens": int(tokens)})
    return resp.status, ctype, data


async def _relay_error(send, resp, call: Call) -> None:
    data = await resp.read()
    resp.release()
    call.status = resp.status
    call.error_code = f"upstream_{resp.status}"
    if call.started:  # headers went out while a model loaded: the error becomes an SSE event
        await send({"type": "http.response.body", "body": b"data: " + data.strip() + b"\n\n", "more_body": True})
        return
    ctype = resp.headers.get("Content-Type", "application/json").encode()
    await send({"type": "http.response.start", "status": resp.status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())]})
    call.started = True
    await send({"type": "http.response.body", "body": data, "more_body": True})
