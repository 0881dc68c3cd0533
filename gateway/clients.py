"""The gateway's only door to the engines: one pooled aiohttp session per process.

aiohttp rather than httpx on this path: its C parser and `readany()` hand over whatever bytes
the socket delivered, so a stream is forwarded in as few writes as the engine's pacing allows,
at a fraction of the CPU per chunk.
"""
from __future__ import annotations

import aiohttp
from django.conf import settings

ClientError = aiohttp.ClientError
RefusedError = aiohttp.ClientConnectorError
ConnectError = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError)
TimeoutError_ = aiohttp.ServerTimeoutError

# Upstream bodies pass through untouched: no Accept-Encoding, so engines never compress.
_SKIP = ("Accept-Encoding", "User-Agent")
_JSON = {"Content-Type": "application/json"}


def session_create() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=settings.PORTAL_GATEWAY_MAX_CONNECTIONS, limit_per_host=0,
                                     keepalive_timeout=30, enable_cleanup_closed=False, use_dns_cache=True,
                                     ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.PORTAL_GATEWAY_CONNECT_TIMEOUT_S,
                                    sock_read=settings.PORTAL_GATEWAY_REQUEST_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 skip_auto_headers=_SKIP, raise_for_status=False)


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> aiohttp.ClientResponse:
    """POST a JSON body; the caller reads the response and must `release()` or `close()` it."""
    return await session.post(url, data=body, headers=_JSON)


async def get(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    return await session.get(url)
