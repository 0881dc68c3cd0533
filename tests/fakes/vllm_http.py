"""The HTTP side of the fake `vllm serve` (aiohttp on the socket bound at startup). See vllm_serve.py."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import time
import uuid

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tests.fakes import vllm_structured
from tests.fakes.vllm_serve import VERSION, _env_float, log, uvicorn
from tests.fakes.vllm_sleep import SleepMode
from tests.fakes.vllm_stats import EngineStats, Tokenizer, split_pieces

# prometheus-fastapi-instrumentator leaves these out of its http_* metrics.
UNINSTRUMENTED = {"/metrics", "/health", "/load", "/ping", "/version", "/server_info"}
ROUTES = [("/health", "GET"), ("/ping", "GET, POST"), ("/version", "GET"), ("/load", "GET"), ("/metrics", "GET"),
          ("/v1/models", "GET"), ("/v1/chat/completions", "POST"), ("/v1/completions", "POST"),
          ("/tokenize", "POST"), ("/detokenize", "POST"), ("/v1/embeddings", "POST"), ("/rerank", "POST"),
          ("/v1/rerank", "POST"), ("/v2/rerank", "POST")]


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def error(status: int, message: str, err_type: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    return web.json_response(body, status=status, dumps=dumps)


class App:
    def __init__(self, cfg, engine_pid: int):
        self.cfg = cfg
        self.engine_pid = engine_pid
        self.tok = Tokenizer()
        self.stats = EngineStats(model_name=cfg.served[0], cfg=cfg)
        self.fingerprint = f"vllm-{VERSION}-{hashlib.sha256(cfg.model.encode()).hexdigest()[:8]}"
        self.created = int(time.time())
        self.ttft = _env_float("FAKE_VLLM_TTFT_S", 0.0)
        self.token_delay = _env_float("FAKE_VLLM_TOKEN_DELAY_S", 0.0)
        self.natural = int(_env_float("FAKE_VLLM_OUTPUT_TOKENS", 12))
        self.break_after = int(_env_float("FAKE_VLLM_BREAK_AFTER_TOKENS", 0))
        self.in_flight = 0
        # Like vLLM's scheduler: at most max_num_seqs requests run, the rest wait in arrival order.
        self.seqs = asyncio.Semaphore(cfg.max_num_seqs) if cfg.max_num_seqs else None
        self.sleep = SleepMode(enabled=cfg.enable_sleep_mode, stats=self.stats)

    # --- middleware: api key, access log, instrumentator metrics -------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        start = time.perf_counter()
        path = request.path
        if self.cfg.api_keys and path.startswith(("/v1", "/v2", "/inference", "/cohere")):
            header = request.headers.get("Authorization", "")
            if header.removeprefix("Bearer ").strip() not in self.cfg.api_keys:
                return self._done(request, web.json_response({"error": "Unauthorized"}, status=401), start)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = web.json_response({"detail": exc.reason}, status=exc.status)
        return self._done(request, response, start)

    def _done(self, request: web.Request, response, start: float):
        path = request.path
        if self.cfg.access_log and path not in self.cfg.quiet_paths:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            host, port = (peer[0], peer[1]) if peer else ("127.0.0.1", 0)
            phrase = response.reason or ""
            sys.stdout.write(f'INFO:     {host}:{port} - "{request.method} {path} HTTP/1.1" '
                             f"{response.status} {phrase}\n")
        if path not in UNINSTRUMENTED:
            route = request.match_info.route.resource
            handler = route.canonical if route is not None else "none"
            elapsed = time.perf_counter() - start
            status = f"{str(response.status)[0]}xx"
            self.stats.http_requests.labels(handler=handler, method=request.method, status=status).inc()
            self.stats.http_request_size.labels(handler=handler).observe(request.content_length or 0)
            size = response.content_length if isinstance(response, web.Response) else 0
            self.stats.http_response_size.labels(handler=handler).observe(size or 0)
            self.stats.http_highr.observe(elapsed)
            self.stats.http_duration.labels(handler=handler, method=request.method).observe(elapsed)
        return response

    # --- plain endpoints -------------------------------------------------------------------------------
    async def health(self, request):
        return web.Response(status=200)

    async def version(self, request):
        return web.json_response({"version": VERSION}, dumps=dumps)

    async def load(self, request):
        return web.json_response({"server_load": self.in_flight}, dumps=dumps)

    async def metrics(self, request):
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def models(self, request):
        cards = []
        for name in self.cfg.served:
            cards.append({"id": name, "object": "model", "created": self.created, "owned_by": "vllm",
                          "root": self.cfg.model, "parent": None, "max_model_len": self.cfg.max_model_len,
                          "permission": [{"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
                                          "created": self.created, "allow_create_engine": False,
                                          "allow_sampling": True, "allow_logprobs": True,
                                          "allow_search_indices": False, "allow_view": True,
                                          "allow_fine_tuning": False, "organization": "*", "group": None,
                                          "is_blocking": False}]})
        return web.json_response({"object": "list", "data": cards}, dumps=dumps)

    async def _body(self, request) -> dict | web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "Expecting a JSON object in the request body.", "BadRequestError")
        if not isinstance(body, dict):
            return error(400, "Input should be a valid dictionary", "BadRequestError")
        model = body.get("model")
        if model is not None and model not in self.cfg.served and model != self.cfg.model:
            return error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        return body

    def _chat_prompt(self, messages) -> list[int] | None:
        if not isinstance(messages, list) or not messages:
            return None
        ids: list[int] = []
        for message in messages:
            if not isinstance(message, dict):
                return None
            content = message.get("content") or ""
            if isinstance(content, list):
                content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            ids += self.tok.encode(f"<|im_start|>{message.get('role', 'user')}\n") + self.tok.encode(str(content))
        return ids + self.tok.encode("<|im_start|>assistant\n")

    async def tokenize(self, request):
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        if "messages" in body:
            ids = self._chat_prompt(body["messages"]) or []
        else:
            ids = self.tok.encode(str(body.get("prompt", "")))
        return web.json_response({"count": len(ids), "max_model_len": self.cfg.max_model_len, "tokens": ids,
                                  "token_strs": None}, dumps=dumps)

    async def detokenize(self, request):
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        return web.json_response({"prompt": self.tok.decode(body.get("tokens") or [])}, dumps=dumps)

    async def embeddings(self, request):
        if not self.cfg.pooling:
            raise web.HTTPNotFound()
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data, total = [], 0
        for index, text in enumerate(inputs):
            ids = self.tok.encode(str(text))
            total += len(ids)
            digest = hashlib.sha256(str(text).encode()).digest()
            vector = [round((b - 127.5) / 127.5, 4) for b in digest[:16]]
            data.append({"index": index, "object": "embedding", "embedding": vector})
        usage = {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0,
                 "prompt_tokens_details": None, "completion_tokens_details": None}
        return web.json_response({"id": f"embd-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                                  "model": body.get("model") or self.cfg.served[0], "data": data, "usage": usage},
                                 dumps=dumps)

    async def rerank(self, request):
        """vLLM's rerank (pooling models): {"model", "query", "documents", "top_n"} -> results by relevance.

        The fake's relevance is the word overlap of query and document (Jaccard), enough to rank."""
        if not self.cfg.pooling:
            raise web.HTTPNotFound()
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str):
            return error(400, "query: Field required (a string)", "BadRequestError", "query")
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            return error(400, "documents: Field required (a list of strings)", "BadRequestError", "documents")
        words = set(re.findall(r"\w+", query.lower()))
        results, total = [], 0
        for index, text in enumerate(documents):
            total += len(self.tok.encode(query)) + len(self.tok.encode(text))
            other = set(re.findall(r"\w+", text.lower()))
            score = len(words & other) / len(words | other) if words | other else 0.0
            results.append({"index": index, "document": {"text": text, "multi_modal": None},
                            "relevance_score": round(score, 6)})
        results.sort(key=lambda r: -r["relevance_score"])
        top_n = body.get("top_n") or 0
        if isinstance(top_n, int) and top_n > 0:
            results = results[:top_n]
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        return web.json_response({"id": f"rerank-{request_id}", "model": body.get("model") or self.cfg.served[0],
                                  "usage": {"prompt_tokens": total, "total_tokens": total}, "results": results},
                                 dumps=dumps)

    # --- generation --------------------------------------------------------------------------------------
    async def chat(self, request):
        return await self._generate(request, chat=True)

    async def completions(self, request):
        return await self._generate(request, chat=False)

    async def _generate(self, request, *, chat: bool):
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        await self.sleep.wait_awake()
        if chat:
            prompt = self._chat_prompt(body.get("messages"))
            if prompt is None:
                return error(400, "messages: Field required (a non-empty list of {role, content})",
                             "BadRequestError", "messages")
        else:
            if "prompt" not in body:
                return error(400, "prompt: Field required", "BadRequestError", "prompt")
            raw = body["prompt"]
            prompt = list(raw) if isinstance(raw, list) and all(isinstance(i, int) for i in raw) \
                else self.tok.encode(str(raw if not isinstance(raw, list) else " ".join(map(str, raw))))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is None and not chat:
            limit = 16  # vLLM's CompletionRequest default
        room = self.cfg.max_model_len - len(prompt)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return error(400, f"max_tokens must be at least 1, got {limit}.", "BadRequestError", "max_tokens")
        if limit is not None and len(prompt) + limit > self.cfg.max_model_len:
            return error(400, f"This model's maximum context length is {self.cfg.max_model_len} tokens. However, you "
                         f"requested {len(prompt) + limit} tokens ({len(prompt)} in the messages, {limit} in the "
                         "completion). Please reduce the length of the messages or completion.",
                         "BadRequestError")
        max_tokens = limit if limit is not None else room
        schema = vllm_structured.schema_of(body) if chat else None
        forced = split_pieces(vllm_structured.answer(schema)) if schema is not None else None
        if forced is not None:
            n_out = min(len(forced), max_tokens)
        else:
            n_out = max_tokens if body.get("ignore_eos") else min(self.natural, max_tokens)
        reason = "length" if n_out >= max_tokens else "stop"
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{request_id}"
        job = _Job(self, rid, prompt, n_out, max_tokens, reason, pieces=forced)
        self.in_flight += 1
        try:
            async with self.seqs or contextlib.nullcontext():
                if body.get("stream"):
                    return await self._stream(request, body, job, chat=chat)
                return await self._whole(body, job, chat=chat)
        finally:
            self.in_flight -= 1

    def _details(self, job: _Job, *, chat: bool, stream: bool) -> dict | None:
        """prompt_tokens_details as vLLM 0.26 fills it with --enable-prompt-tokens-details (null without):
        cached whole blocks, the blocks this prompt added to the cache (chat only), and multimodal_tokens
        outside streams (perf/real_vllm/runs/2026-12-06-h100/facts.json)."""
        if not self.cfg.prompt_tokens_details:
            return None
        full = (len(job.prompt) - 1) // self.cfg.block_size * self.cfg.block_size if self.stats.prefix_caching else 0
        details = {"cached_tokens": job.cached, "created_cache_tokens": full - job.cached if chat else None}
        if not stream:
            details["multimodal_tokens"] = None
        return details

    async def _whole(self, body, job: _Job, *, chat: bool):
        pieces = [piece async for piece in job.tokens()]
        job.finish(job.reason)
        text = "".join(pieces)
        usage = {"prompt_tokens": len(job.prompt), "total_tokens": len(job.prompt) + len(pieces),
                 "completion_tokens": len(pieces), "prompt_tokens_details": self._details(job, chat=chat, stream=False),
                 "completion_tokens_details": None}
        common = {"logprobs": None, "finish_reason": job.reason, "stop_reason": None, "token_ids": None}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                              "annotations": None, "audio": None, "function_call": None,
                                              "reasoning": None},
                      **common, "routed_experts": None, "weight_versions": None}
            out = {"id": job.rid, "object": "chat.completion", "created": job.created, "model": job.model(body),
                   "choices": [choice], "service_tier": None, "system_fingerprint": self.fingerprint, "usage": usage,
                   "prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None, "kv_transfer_params": None,
                   "ec_transfer_params": None, "metrics": None}
        else:
            choice = {"index": 0, "text": text, **common, "prompt_logprobs": None, "prompt_token_ids": None,
                      "routed_experts": None, "weight_versions": None}
            out = {"id": job.rid, "object": "text_completion", "created": job.created, "model": job.model(body),
                   "choices": [choice], "service_tier": None, "system_fingerprint": self.fingerprint, "usage": usage,
                   "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        return web.json_response(out, dumps=dumps)

    async def _stream(self, request, body, job: _Job, *, chat: bool):
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) or self.cfg.force_usage
        continuous = bool(options.get("continuous_usage_stats")) and include_usage
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        model = job.model(body)
        obj = "chat.completion.chunk" if chat else "text_completion"
        sent = 0

        def chunk(choices, usage=None) -> bytes:
            data = {"id": job.rid, "object": obj, "created": job.created, "model": model, "choices": choices}
            if usage is not None:
                data["usage"] = usage
            if chat and choices and "role" in choices[0].get("delta", {}):
                data.update({"prompt_token_ids": None, "prompt_text": None})
            elif choices:
                data["kv_transfer_params"] = None
            return f"data: {dumps(data)}\n\n".encode()

        def usage_now():
            usage = {"prompt_tokens": len(job.prompt), "total_tokens": len(job.prompt) + sent,
                     "completion_tokens": sent}
            details = self._details(job, chat=chat, stream=True)
            if details is not None:
                usage["prompt_tokens_details"] = details
            return usage

        try:
            if chat:
                first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                         "finish_reason": None}
                await response.write(chunk([first], usage_now() if continuous else None))
            async for piece in job.tokens():
                sent += 1
                if sent == self.break_after:
                    job.finish("abort")
                    request.transport.abort()  # the engine dies mid-answer: no final event, no [DONE]
                    return response
                if chat:
                    choice = {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None,
                              "token_ids": None}
                else:
                    choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": None, "stop_reason": None,
                              "prompt_token_ids": None, "token_ids": None, "weight_versions": None}
                await response.write(chunk([choice], usage_now() if continuous else None))
            if chat:
                last = {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": job.reason,
                        "stop_reason": None, "token_ids": None, "weight_versions": None}
            else:
                last = {"index": 0, "text": "", "logprobs": None, "finish_reason": job.reason, "stop_reason": None,
                        "prompt_token_ids": None, "token_ids": None, "weight_versions": None}
            await response.write(chunk([last], usage_now() if continuous else None))
            job.finish(job.reason)
            if include_usage:
                final = {"id": job.rid, "object": obj, "created": job.created, "model": model, "choices": [],
                         "usage": usage_now(), "system_fingerprint": self.fingerprint}
                await response.write(f"data: {dumps(final)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            job.finish("abort")
            raise
        await response.write_eof()
        return response

    # --- lifecycle --------------------------------------------------------------------------------------------
    def build(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/health", self.health)
        r.add_get("/ping", self.health)
        r.add_post("/ping", self.health)
        r.add_get("/version", self.version)
        r.add_get("/load", self.load)
        r.add_get("/metrics", self.metrics)
        r.add_get("/v1/models", self.models)
        r.add_post("/v1/chat/completions", self.chat)
        r.add_post("/v1/completions", self.completions)
        r.add_post("/tokenize", self.tokenize)
        r.add_post("/detokenize", self.detokenize)
        r.add_post("/v1/embeddings", self.embeddings)
        for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
            r.add_post(path, self.rerank)
        self.dev_routes = self.sleep.routes(r)
        return app


class _Job:
    """One request going through the simulated engine, feeding its statistics."""

    def __init__(self, app: App, rid: str, prompt: list[int], n_out: int, max_tokens: int, reason: str,
                 pieces: list[str] | None = None):
        self.app, self.rid, self.prompt = app, rid, prompt
        self.pieces = pieces  # a structured answer's tokens; None: the stock answer
        self.n_out, self.max_tokens, self.reason = n_out, max_tokens, reason
        self.created = int(time.time())
        self.arrival = time.monotonic()
        self.first: float | None = None
        self.produced = 0
        self.done = False
        self.cached = app.stats.admit(rid, prompt)

    def model(self, body) -> str:
        return body.get("model") or self.app.cfg.served[0]

    async def tokens(self):
        stats, last = self.app.stats, self.arrival
        pieces = self.pieces[:self.n_out] if self.pieces is not None else self.app.tok.answer(self.n_out)
        for piece in pieces:
            delay = self.app.ttft if self.first is None else self.app.token_delay
            if delay:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if self.first is None:
                self.first = now
                stats.first_token(prompt_len=len(self.prompt), cached=self.cached, ttft=now - self.arrival)
            else:
                stats.next_token(self.rid, now - last)
            last = now
            self.produced += 1
            yield piece

    def finish(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self.app.stats.finish(self.rid, reason=reason, prompt_len=len(self.prompt), cached=self.cached,
                              n_out=self.produced, max_tokens=self.max_tokens, arrival=self.arrival,
                              first=self.first, end=time.monotonic())


async def _serve(cfg, sock, engine_pid: int) -> int:
    app = App(cfg, engine_pid)
    runner = web.AppRunner(app.build(), access_log=None, handle_signals=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    exit_code = {"value": 0}

    def shutdown(signum: int) -> None:
        log("APIServer", "INFO", "launcher.py:121", "[shutdown] API server: shutdown triggered")
        stopped.set()

    if os.environ.get("FAKE_VLLM_IGNORE_SIGTERM") != "1":
        loop.add_signal_handler(signal.SIGTERM, shutdown, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, shutdown, signal.SIGINT)
    host = cfg.host or "0.0.0.0"
    log("APIServer", "INFO", "api_server.py:1887", "Supported tasks: ['generate']" if not cfg.pooling
        else "Supported tasks: ['embed', 'token_embed']")
    log("APIServer", "INFO", "api_server.py:1961", f"Starting vLLM server on http://{host}:{cfg.port}")
    log("APIServer", "INFO", "launcher.py:46", "Available routes are:")
    for path, methods in ROUTES + app.dev_routes:
        log("APIServer", "INFO", "launcher.py:54", f"Route: {path}, Methods: {methods}")
    uvicorn(f"Started server process [{os.getpid()}]")
    uvicorn("Waiting for application startup.")
    sock.listen(1024)
    site = web.SockSite(runner, sock)
    await site.start()
    uvicorn("Application startup complete.")
    tasks = [asyncio.create_task(_stats_logger(app, stopped))]
    crash_after = _env_float("FAKE_VLLM_EXIT_AFTER_S", 0.0)
    if crash_after:
        tasks.append(asyncio.create_task(_crash(crash_after, stopped, exit_code)))
    rate = _env_float("FAKE_VLLM_LOG_LINES_PER_S", 0.0)
    if rate:
        tasks.append(asyncio.create_task(_log_spam(rate, stopped)))
    await stopped.wait()
    for task in tasks:
        task.cancel()
    await runner.cleanup()
    _stop_engine(engine_pid)
    return exit_code["value"]


async def _stats_logger(app: App, stopped: asyncio.Event) -> None:
    interval = _env_float("VLLM_LOG_STATS_INTERVAL", 10.0)
    while not stopped.is_set() and app.cfg.log_stats:
        await asyncio.sleep(interval)
        line = app.stats.stats_line()
        if line:
            log("APIServer", "INFO", "loggers.py:335", line)


async def _crash(after: float, stopped: asyncio.Event, exit_code: dict) -> None:
    await asyncio.sleep(after)
    log("APIServer", "ERROR", "async_llm.py:702",
        "Engine core proc EngineCore died unexpectedly, shutting down client.")
    sys.stderr.write("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace "
                     "(above) for the root cause.\n")
    exit_code["value"] = 1
    stopped.set()


async def _log_spam(rate: float, stopped: asyncio.Event) -> None:
    """Filler lines at a steady rate, written in ~10 ms batches like a busy engine's access log."""
    pid, start, written = os.getpid(), time.monotonic(), 0
    while not stopped.is_set():
        due = int((time.monotonic() - start) * rate) - written
        if due > 0:
            stamp = time.time()
            sys.stdout.write("".join(f"(APIServer pid={pid}) DEBUG line {written + i} t={stamp:.6f}\n"
                                     for i in range(due)))
            sys.stdout.flush()
            written += due
        await asyncio.sleep(0.01)


def _stop_engine(engine_pid: int) -> None:
    """vLLM's process manager: SIGTERM the EngineCore, wait up to 5 s, then SIGKILL."""
    try:
        os.kill(engine_pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid, _status = os.waitpid(engine_pid, os.WNOHANG)
        if pid:
            return
        time.sleep(0.02)
    log("APIServer", "INFO", "utils.py:215", "[shutdown] Process manager: force killing remaining process "
        f"{engine_pid}")
    try:
        os.kill(engine_pid, signal.SIGKILL)
        os.waitpid(engine_pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def run(cfg, sock, engine_pid: int) -> int:
    return asyncio.run(_serve(cfg, sock, engine_pid))
