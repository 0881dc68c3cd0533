"""The benchmarks app's boundary to HTTP: engine endpoints in OpenAI wire format.

The request functions follow `vllm bench serve`'s (vllm/benchmarks/lib/endpoint_request_func.py)
so that both tools time the same events: TTFT at the first chunk that carries `choices`, ITL
between such chunks, latency at the last of them, output tokens from the final `usage` chunk.
"""
import json
import time

import aiohttp
import httpx

from benchmarks.statistics import RequestOutput

NO_FIRST_CHUNK = "Never received a valid chunk to calculate TTFT. This response will be marked as failed!"


def make_session(*, limit: int) -> aiohttp.ClientSession:
    """One keep-alive pool for a whole benchmark (`limit` 0 = unbounded, as the tool does for no concurrency cap)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=60, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=6 * 3600),
                                 trust_env=False)


_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')


def _events(buffer: bytearray, chunk: bytes) -> list[bytes]:
    """Complete `data:` payloads in `buffer` + `chunk`; a partial event stays in `buffer`."""
    if not buffer and chunk.endswith(b"\n\n"):
        parts = chunk.split(b"\n\n")  # the usual case: whole events only, no copy
        parts.pop()
    else:
        buffer.extend(chunk)
        if b"\n\n" not in buffer:
            return []
        parts = bytes(buffer).split(b"\n\n")
        buffer[:] = parts.pop()
    return [part[5:].strip() if part.startswith(b"data:") else part.strip()[5:].strip() for part in parts
            if b"data:" in part]


async def stream_generation(session: aiohttp.ClientSession, *, url: str, body: bytes, headers: dict,
                            output: RequestOutput) -> RequestOutput:
    """POST one streaming completion (or chat completion) and time it into `output`.

    Only the chunks without choices (the usage chunk, an error) are decoded: on the hot path a
    chunk with choices is recognised by its bytes, which keeps the generator off the CPU.
    """
    first = False
    last = start = time.perf_counter()
    output.start_time = start
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                text = (await response.read())[:300].decode(errors="replace")
                output.error = f"HTTP {response.status} {response.reason or ''}: {text}".strip()
                return output
            buffer = bytearray()
            content = response.content
            while raw := await content.readany():
                now = time.perf_counter()
                for data in _events(buffer, raw):
                    if b'"choices"' in data and _EMPTY_CHOICES[0] not in data and _EMPTY_CHOICES[1] not in data:
                        if not first:
                            first = True
                            output.ttft = now - start
                        else:
                            output.itl.append(now - last)
                        last = now
                    elif data != b"[DONE]":
                        message = json.loads(data)
                        if usage := message.get("usage"):
                            output.output_tokens = int(usage.get("completion_tokens") or 0)
                            output.prompt_len = int(usage.get("prompt_tokens") or output.prompt_len)
                        elif error := message.get("error"):
                            output.error = str(error.get("message", error) if isinstance(error, dict) else error)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        output.error = f"{type(exc).__name__}: {exc}"
        return output
    if first:
        output.success = True
        if not output.output_tokens:
            # No usage chunk (an endpoint that ignores stream_options): one chunk is one token.
            output.output_tokens = len(output.itl) + 1
    else:
        output.error = output.error or NO_FIRST_CHUNK
    output.latency = last - start
    return output


async def post_embeddings(session: aiohttp.ClientSession, *, url: str, body: bytes, headers: dict,
                          output: RequestOutput) -> RequestOutput:
    """POST one embeddings request; only its end-to-end latency is timed (as the tool does for pooling)."""
    start = time.perf_counter()
    output.start_time = start
    try:
        async with session.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                text = answer[:300].decode(errors="replace")
                output.error = f"HTTP {response.status} {response.reason or ''}: {text}"
                return output
            data = json.loads(answer)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        output.error = f"{type(exc).__name__}: {exc}"
        return output
    output.latency = time.perf_counter() - start
    output.ttft = output.latency
    usage = data.get("usage") or {}
    output.prompt_len = int(usage.get("prompt_tokens") or output.prompt_len)
    output.success = bool(data.get("data"))
    if not output.success:
        output.error = "The response has no `data` list of embeddings."
    return output


def engine_version(base_url: str, *, timeout: float = 3.0) -> str:
    """`GET /version` of a vLLM server ({"version": "0.33.0"}); empty when it does not say."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/version", timeout=timeout, trust_env=False)
        if response.status_code == 200:
            return str(response.json().get("version", ""))[:50]
    except (httpx.HTTPError, ValueError):
        pass
    return ""
