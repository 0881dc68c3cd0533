"""A scripted OpenAI-compatible upstream in vLLM's wire format, with known delays.

`python -m tests.fakes.openai_upstream --port P [--ttft-ms T] [--itl-ms I] [--tokens N]`

Streams /v1/completions and /v1/chat/completions as vLLM does (`data: {json}\\n\\n` events, a
`choices: []` usage chunk when `stream_options.include_usage`, then `data: [DONE]`): the first
token T ms after the request arrived, then one token every I ms, `max_tokens` tokens (or N when
the request gives none). /v1/embeddings answers after T ms. With T = I = 0 it is as fast as the
event loop allows (the load generator's throughput benchmark). Loopback only.
"""
import argparse
import asyncio
import json
import time

from aiohttp import web

MODEL = "stub-model"


def _chunk(kind: str, rid: str, created: int, text: str | None, finish: str | None = None) -> bytes:
    if kind == "chat":
        delta = {} if text is None else {"content": text}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": MODEL, "choices": [choice]}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish, "stop_reason": None}
        body = {"id": rid, "object": "text_completion", "created": created, "model": MODEL, "choices": [choice]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class Upstream:
    def __init__(self, ttft_s: float, itl_s: float, tokens: int):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.tokens = tokens
        self.requests = 0

    async def generate(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        body = await request.json()
        self.requests += 1
        kind = "chat" if request.path.endswith("chat/completions") else "text"
        count = int(body.get("max_completion_tokens") or body.get("max_tokens") or self.tokens)
        prompt = body.get("prompt") or " ".join(m.get("content", "") for m in body.get("messages", []))
        prompt_tokens = len(str(prompt).split())
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + request.headers.get("x-request-id", "0")
        created = int(time.time())
        if not body.get("stream"):
            await asyncio.sleep(self.ttft_s + self.itl_s * (count - 1))
            text = " tok" * count
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count,
                     "total_tokens": prompt_tokens + count}
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if kind == "chat" else {"index": 0, "text": text, "finish_reason": "length"})
            return web.json_response({"id": rid, "object": "chat.completion" if kind == "chat" else "text_completion",
                                      "created": created, "model": MODEL, "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if kind == "chat":
            await response.write(b"data: " + json.dumps({
                "id": rid, "object": "chat.completion.chunk", "created": created, "model": MODEL,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None}]}).encode() + b"\n\n")
        tail = b""
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + count, "completion_tokens": count}
            obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
            tail = b"data: " + json.dumps({"id": rid, "object": obj, "created": created, "model": MODEL,
                                           "choices": [], "usage": usage}).encode() + b"\n\n"
        tail += b"data: [DONE]\n\n"
        chunks = [_chunk(kind, rid, created, " tok", "length" if i == count - 1 else None) for i in range(count)]
        if not self.ttft_s and not self.itl_s:
            # No delays scripted: the whole stream in one write, so the upstream is as fast as it gets.
            await response.write(b"".join(chunks) + tail)
        else:
            # Token i is due at first + i * itl (deadlines, so scheduling jitter does not accumulate).
            first = arrived + self.ttft_s
            for i, chunk in enumerate(chunks):
                delay = first + self.itl_s * i - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if i == 0:
                    first = max(first, time.perf_counter())
                await response.write(chunk)
            await response.write(tail)
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.ttft_s)
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        tokens = sum(len(str(t).split()) for t in inputs)
        return web.json_response({"id": "embd-1", "object": "list", "created": int(time.time()), "model": MODEL,
                                  "data": [{"index": i, "object": "embedding", "embedding": [0.0] * 8}
                                           for i in range(len(inputs))],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                                            "completion_tokens": 0}})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm",
                                                              "root": MODEL, "parent": None, "max_model_len": 4096}]})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.33.0"})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests})


def build_app(upstream: Upstream) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/completions", upstream.generate)
    app.router.add_post("/v1/chat/completions", upstream.generate)
    app.router.add_post("/v1/embeddings", upstream.embeddings)
    app.router.add_get("/v1/models", upstream.models)
    app.router.add_get("/health", upstream.health)
    app.router.add_get("/version", upstream.version)
    app.router.add_get("/stats", upstream.stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    upstream = Upstream(args.ttft_ms / 1000, args.itl_ms / 1000, args.tokens)
    web.run_app(build_app(upstream), host="127.0.0.1", port=args.port, print=None, access_log=None,
                backlog=1024)


if __name__ == "__main__":
    main()
