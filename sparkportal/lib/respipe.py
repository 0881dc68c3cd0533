"""A pipelined asyncio Redis connection for the gateway's per-request scripts.

redis-py's asyncio client checks a connection out of a pool for every command, so 128
concurrent requests hold 128 connections and pay the pool and per-argument packing each time.
Redis answers commands on one connection strictly in order, so one connection can carry any
number of commands in flight: each caller writes its packed command and waits on a future that
the reply parser (hiredis, the C parser redis-py itself uses) resolves in order.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections import deque

import hiredis
from redis.connection import parse_url

ReplyError = hiredis.ReplyError


class RedisUnavailable(ConnectionError):
    pass


def pack(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            value = arg
        elif isinstance(arg, str):
            value = arg.encode()
        else:
            value = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            waiter = self.waiters.popleft()
            if waiter.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc) -> None:
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisUnavailable(f"Redis connection lost: {exc or 'closed'}"))


class PipelinedRedis:
    def __init__(self, url: str) -> None:
        self.options = parse_url(url)
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        opts = self.options
        try:
            if opts.get("path"):
                _t, proto = await loop.create_unix_connection(_Protocol, opts["path"])
            else:
                _t, proto = await loop.create_connection(
                    _Protocol, opts.get("host", "127.0.0.1"), opts.get("port", 6379),
                    ssl=True if opts.get("connection_class") and "SSL" in opts["connection_class"].__name__ else None)
        except OSError as exc:
            raise RedisUnavailable(f"cannot connect to Redis: {exc}") from exc
        setup = []
        if opts.get("password"):
            setup.append(pack(b"AUTH", *([opts["username"]] if opts.get("username") else []), opts["password"]))
        if opts.get("db"):
            setup.append(pack(b"SELECT", opts["db"]))
        for command in setup:
            await self._send(proto, command)
        return proto

    async def _ensure(self) -> _Protocol:
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = self._connecting = asyncio.ensure_future(self._connect())
        proto = await asyncio.shield(connecting)
        if self._proto is None or self._proto.closed:
            self._proto = proto
        return proto

    @staticmethod
    def _send(proto: _Protocol, command: bytes) -> asyncio.Future:
        waiter = asyncio.get_running_loop().create_future()
        proto.waiters.append(waiter)
        proto.transport.write(command)
        return waiter

    async def execute(self, command: bytes):
        """Send one packed command (see `pack`) and wait for its reply."""
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._ensure()
        return await self._send(proto, command)

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class Script:
    """EVALSHA with a fall-back to EVAL when the server's script cache was flushed."""

    def __init__(self, client: PipelinedRedis, source: str) -> None:
        self.client = client
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()

    async def __call__(self, keys: list, args: list):
        try:
            return await self.client.execute(pack(b"EVALSHA", self.sha, len(keys), *keys, *args))
        except hiredis.ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.client.execute(pack(b"EVAL", self.source, len(keys), *keys, *args))
