"""The benchmarks app's boundary to HTTP: engine endpoints in OpenAI wire format.

The request functions follow `vllm bench serve`'s (vllm/benchmarks/lib/endpoint_request_func.py)
so that both tools time the same events: TTFT at the first chunk that carries `choices`, ITL
between such chunks, latency at the last of them, output tokens from the final `usage` chunk.
"""
import json
import time

import aiohttp
import httpx

from benchmarks.metrics import RequestOutput

NO_FIRST_CHUNK = "Never received a valid chunk to calculate TTFT. This response will be marked as failed!"


def make_session(*, limit: int) -> aiohttp.ClientSession:
    """One keep-alive pool for a whole benchmark (`limit` 0 = unbounded, as the tool does for no concurrency cap)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=60,
                                     enable_cleanup_closed=True, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=6 * 3600),
                                 trust_env=False)


def _iter_sse_lines(buffer: bytearray, chunk: bytes):
    """Split a byte stream into `data: ...` payloads; partial events stay in `buffer`."""
    buffer.extend(chunk)
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return
        event = bytes(buffer[:end])
        del buffer[:end + 2]
        for line in event.split(b"\n"):
            line = line.strip()
            if line.startswith(b"data:"):
                yield line[5:].strip()


async def stream_generation(session: aiohttp.ClientSession, *, url: str, payload: dict, headers: dict,
                            chat: bool, output: RequestOutput) -> RequestOutput:
    """POST one streaming completion (or chat completion) and time it into `output`."""
    text_parts: list[str] = []
    first = False
    last = start = time.perf_counter()
    output.start_time = start
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            if response.status != 200:
                body = (await response.read())[:300].decode(errors="replace")
                output.error = f"HTTP {response.status} {response.reason or ''}: {body}".strip()
                return output
            buffer = bytearray()
            async for raw in response.content.iter_any():
                for data in _iter_sse_lines(buffer, raw):
                    if data == b"[DONE]":
                        continue
                    message = json.loads(data)
                    choices = message.get("choices")
                    if choices:
                        now = time.perf_counter()
                        if not first:
                            first = True
                            output.ttft = now - start
                        else:
                            output.itl.append(now - last)
                        last = now
                        choice = choices[0]
                        if chat:
                            delta = choice.get("delta") or {}
                            text_parts.append(delta.get("content") or delta.get("reasoning_content") or "")
                        else:
                            text_parts.append(choice.get("text") or "")
                    elif usage := message.get("usage"):
                        output.output_tokens = int(usage.get("completion_tokens") or 0)
                        output.prompt_len = int(usage.get("prompt_tokens") or output.prompt_len)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        output.error = f"{type(exc).__name__}: {exc}"
        return output
    output.generated_text = "".join(text_parts)
    if first:
        output.success = True
        if not output.output_tokens:
            # No usage chunk (an endpoint that ignores stream_options): one chunk is one token.
            output.output_tokens = len(output.itl) + 1
    else:
        output.error = NO_FIRST_CHUNK
    output.latency = last - start
    return output


async def post_embeddings(session: aiohttp.ClientSession, *, url: str, payload: dict, headers: dict,
                          output: RequestOutput) -> RequestOutput:
    """POST one embeddings request; only its end-to-end latency is timed (as the tool does for pooling)."""
    start = time.perf_counter()
    output.start_time = start
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                output.error = f"HTTP {response.status} {response.reason or ''}: {body[:300].decode(errors='replace')}"
                return output
            data = json.loads(body)
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
