"""The HTTP side of the fake `text-embeddings-router` (aiohttp on the socket bound after warm-up). See tei_router.py.

Endpoints, bodies, errors and metric names follow TEI 1.9.3's router/src/http/server.rs, router/src/lib.rs,
router/src/prometheus.rs and core/src (infer.rs, queue.rs, tokenization.rs).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import os
import random
import re
import signal
import struct
import time
from decimal import Decimal

from aiohttp import web

from tests.fakes.tei_router import GIT_SHA, VERSION, Logger, _env_float

# --- metrics: metrics-exporter-prometheus text, with TEI's bucket layout ----------------------------------------


def _duration_buckets() -> list[float]:
    value, out = 0.00001, []
    for _ in range(35):  # geometric sequence, prometheus.rs
        value *= 1.5
        out.append(value)
    return out


def _number(value: float) -> str:
    """Rust's `{}` for f64: shortest round-trip digits, never an exponent."""
    if math.isinf(value):
        return "+Inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


class Registry:
    """Counters, gauges and histograms keyed by (name, labels); a family is rendered once it was touched."""

    def __init__(self, max_input_length: int):
        self.counters: dict[str, dict[tuple, float]] = {}
        self.gauges: dict[str, float] = {}
        self.histograms: dict[str, dict] = {}
        self.buckets = {
            "te_request_input_length": [2.0 ** x for x in range(20) if 2 ** x <= max_input_length],
            "te_batch_next_size": [2.0 ** x for x in range(13)],
            "te_batch_next_tokens": [2.0 ** x for x in range(21)],
        }

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        family = self.counters.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        family[key] = family.get(key, 0.0) + amount

    def gauge_add(self, name: str, amount: float) -> None:
        self.gauges[name] = self.gauges.get(name, 0.0) + amount

    def observe(self, name: str, value: float) -> None:
        bounds = self.buckets.get(name) or (_duration_buckets() if name.endswith("duration") else None)
        hist = self.histograms.setdefault(name, {"bounds": bounds, "counts": [0] * len(bounds or []),
                                                 "sum": 0.0, "count": 0})
        for i, bound in enumerate(hist["bounds"] or []):
            if value <= bound:
                hist["counts"][i] += 1
        hist["sum"] += value
        hist["count"] += 1

    def render(self) -> str:
        blocks = []
        for name in sorted(self.counters):
            lines = [f"# TYPE {name} counter"]
            for key, value in sorted(self.counters[name].items()):
                labels = "{" + ",".join(f'{k}="{v}"' for k, v in key) + "}" if key else ""
                lines.append(f"{name}{labels} {_number(value)}")
            blocks.append("\n".join(lines))
        for name in sorted(self.gauges):
            blocks.append(f"# TYPE {name} gauge\n{name} {_number(self.gauges[name])}")
        for name in sorted(self.histograms):
            hist = self.histograms[name]
            lines = [f"# TYPE {name} histogram"]
            for bound, count in zip(hist["bounds"], hist["counts"], strict=True):
                lines.append(f'{name}_bucket{{le="{_number(bound)}"}} {count}')
            lines.append(f'{name}_bucket{{le="+Inf"}} {hist["count"]}')
            lines.append(f"{name}_sum {_number(hist['sum'])}")
            lines.append(f"{name}_count {hist['count']}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + ("\n\n" if blocks else "")


# --- the "model" --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text)) + 2  # [CLS] ... [SEP]


def embed_text(text: str, dim: int, normalize: bool) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    if normalize:
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
    return vector


def relevance(query: str, text: str) -> float:
    """A logit that grows with shared words: enough for a reranker stand-in to order texts sensibly."""
    q, t = set(_TOKEN.findall(query.lower())), set(_TOKEN.findall(text.lower()))
    overlap = len(q & t) / max(1, len(q))
    return 8.0 * overlap - 4.0


class Failure(Exception):
    def __init__(self, error_type: str, message: str, metric: str | None = None):
        super().__init__(message)
        self.error_type, self.message, self.metric = error_type, message, metric


STATUS = {"Unhealthy": 503, "Backend": 424, "Overloaded": 429, "Tokenizer": 422, "Validation": 422, "Empty": 400}


class Router:
    def __init__(self, args: dict, log: Logger, max_input_length: int):
        self.args, self.log = args, log
        self.max_input_length = max_input_length
        self.metrics = Registry(max_input_length)
        model_id = str(args["model_id"])
        kind = os.environ.get("FAKE_TEI_MODEL_TYPE") or ("reranker" if "rerank" in model_id.lower() else "embedding")
        self.kind = kind
        self.dim = int(_env_float("FAKE_TEI_DIM", 384))
        self.inference_s = _env_float("FAKE_TEI_INFERENCE_S", 0.002)
        self.in_flight = 0
        pooling = str(args["pooling"] or "cls").replace("-", "_")
        model_type = ({"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}} if kind == "reranker"
                      else {"embedding": {"pooling": pooling}})
        self.info = {
            "model_id": model_id, "model_sha": args["revision"], "model_dtype": args["dtype"] or "float16",
            "served_model_name": args["served_model_name"] or model_id, "model_type": model_type,
            "max_concurrent_requests": args["max_concurrent_requests"], "max_input_length": max_input_length,
            "max_batch_tokens": args["max_batch_tokens"], "max_batch_requests": args["max_batch_requests"],
            "max_client_batch_size": args["max_client_batch_size"], "auto_truncate": args["auto_truncate"],
            "tokenization_workers": args["tokenization_workers"] or max(1, min(64, (os.cpu_count() or 2) - 1)),
            "version": VERSION, "sha": GIT_SHA, "docker_label": f"sha-{GIT_SHA[:7]}",
        }

    # --- inference core: tokenization, queue, batch, per-input metrics ---
    async def run(self, inputs: list[str], *, truncate: bool, op: str) -> tuple[list[int], dict]:
        """Tokenize, queue and "infer" one batch; returns each input's token count and the timings (s)."""
        m = self.metrics
        if self.in_flight + len(inputs) > int(self.args["max_concurrent_requests"]):
            raise Failure("Overloaded", "Model is overloaded", "overloaded")
        self.in_flight += len(inputs)
        try:
            began = time.perf_counter()
            tokens = []
            for text in inputs:
                n = count_tokens(text)
                if n > self.max_input_length:
                    if not truncate:
                        raise Failure("Validation", "Input validation error: `inputs` must have less than "
                                      f"{self.max_input_length} tokens. Given: {n}", "validation")
                    n = self.max_input_length
                m.observe("te_request_input_length", n)
                m.inc(f"te_{op}_count")
                tokens.append(n)
            tokenized = time.perf_counter()
            m.gauge_add("te_queue_size", len(inputs))
            await asyncio.sleep(0)
            m.gauge_add("te_queue_size", -len(inputs))
            m.observe("te_batch_next_size", len(inputs))
            m.observe("te_batch_next_tokens", sum(tokens))
            queued = time.perf_counter()
            await asyncio.sleep(self.inference_s)
            done = time.perf_counter()
            timings = {"tokenization": tokenized - began, "queue": queued - tokenized, "inference": done - queued}
            for _ in inputs:
                m.inc(f"te_{op}_success")
                m.observe(f"te_{op}_duration", done - began)
                for part, seconds in timings.items():
                    m.observe(f"te_{op}_{part}_duration", seconds)
            return tokens, timings
        finally:
            self.in_flight -= len(inputs)

    def finish(self, method: str, start: float, timings: dict, tokens: list[int], chars: int) -> dict:
        m = self.metrics
        m.inc("te_request_success", method=method)
        m.observe("te_request_duration", time.perf_counter() - start)
        for part, seconds in timings.items():
            m.observe(f"te_request_{part}_duration", seconds)
        ms = {k: str(int(v * 1000)) for k, v in timings.items()}
        return {"x-compute-type": "gpu+optimized", "x-compute-time": str(int((time.perf_counter() - start) * 1000)),
                "x-compute-characters": str(chars), "x-compute-tokens": str(sum(tokens)),
                "x-total-time": str(int((time.perf_counter() - start) * 1000)),
                "x-tokenization-time": ms["tokenization"], "x-queue-time": ms["queue"],
                "x-inference-time": ms["inference"]}

    def check_batch(self, inputs: list, what: str) -> None:
        if not inputs:
            self.metrics.inc("te_request_failure", err="validation")
            raise Failure("Empty", f"`{what}` cannot be empty")
        limit = int(self.args["max_client_batch_size"])
        if len(inputs) > limit:
            self.metrics.inc("te_request_failure", err="batch_size")
            raise Failure("Validation", f"batch size {len(inputs)} > maximum allowed batch size {limit}")

    # --- handlers ---
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def get_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain")

    def embedding_inputs(self, body: dict, field: str) -> tuple[list, str]:
        """One text or a list, counted and checked as TEI does for /embed and /v1/embeddings."""
        inputs = body.get(field)
        batch = isinstance(inputs, list)
        method = "batch" if batch else "single"
        self.metrics.inc("te_request_count", method=method)
        if batch:
            self.check_batch(inputs, field)
        if self.kind != "embedding":
            self.metrics.inc("te_request_failure", err="model_type")
            raise Failure("Backend", "Backend error: Model is not an embedding model")
        return (inputs if batch else [inputs]), method

    async def embed(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        body = await request.json()
        inputs, method = self.embedding_inputs(body, "inputs")
        truncate = body.get("truncate")
        tokens, timings = await self.run([str(t) for t in inputs], op="embed",
                                         truncate=self.info["auto_truncate"] if truncate is None else bool(truncate))
        dim = int(body.get("dimensions") or self.dim)
        vectors = [embed_text(str(t), self.dim, body.get("normalize", True))[:dim] for t in inputs]
        headers = self.finish(method, start, timings, tokens, sum(len(str(t)) for t in inputs))
        return web.json_response(vectors, headers=headers)

    async def rerank(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        body = await request.json()
        texts = [str(t) for t in body.get("texts") or []]
        if not texts:
            self.metrics.inc("te_request_failure", err="validation")
            raise Failure("Empty", "`texts` cannot be empty")
        if self.kind != "reranker":
            self.metrics.inc("te_request_failure", err="model_type")
            raise Failure("Backend", "Backend error: model is not a re-ranker model")
        self.metrics.inc("te_request_count", method="batch")
        self.check_batch(texts, "texts")
        query = str(body.get("query", ""))
        truncate = body.get("truncate")
        tokens, timings = await self.run([f"{query} {t}" for t in texts], op="predict",
                                         truncate=self.info["auto_truncate"] if truncate is None else bool(truncate))
        ranks = []
        for index, text in enumerate(texts):
            logit = relevance(query, text)
            rank = {"index": index, "score": logit if body.get("raw_scores") else 1 / (1 + math.exp(-logit))}
            if body.get("return_text"):
                rank["text"] = text
            ranks.append(rank)
        ranks.sort(key=lambda r: r["score"], reverse=True)
        headers = self.finish("batch", start, timings, tokens, sum(len(query) + len(t) for t in texts))
        return web.json_response(ranks, headers=headers)

    async def openai_embed(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        body = await request.json()
        served = self.info["served_model_name"]
        if body.get("model") not in (None, served):
            self.log("WARN", "text_embeddings_router::http::server", "router/src/http/server.rs:1162",
                     f"The provided `model={body['model']}` has not been found, the `model` parameter should be "
                     f"provided either empty or with `model={served}` instead.")
        inputs, method = self.embedding_inputs(body, "input")
        tokens, timings = await self.run([str(t) for t in inputs], op="embed", truncate=self.info["auto_truncate"])
        data = []
        for index, text in enumerate(inputs):
            vector = embed_text(str(text), self.dim, True)[:int(body.get("dimensions") or self.dim)]
            if body.get("encoding_format") == "base64":
                encoded: object = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "embedding": encoded, "index": index})
        headers = self.finish(method, start, timings, tokens, sum(len(str(t)) for t in inputs))
        usage = {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
        return web.json_response({"object": "list", "data": data, "model": served, "usage": usage}, headers=headers)

    # --- middleware: api key on the non-public routes, TEI's error bodies ---
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        public = request.path in ("/health", "/ping", "/metrics") or (request.path == "/" and request.method == "GET")
        key = self.args["api_key"]
        if key and not public and request.headers.get("Authorization") != f"Bearer {key}":
            return web.Response(status=401)
        try:
            return await handler(request)
        except Failure as exc:
            if exc.metric:
                self.metrics.inc("te_request_failure", err=exc.metric)
            self.log("ERROR", "text_embeddings_router::http::server", "router/src/http/server.rs:600", exc.message)
            if request.path in ("/v1/embeddings", "/embeddings"):
                body = {"message": exc.message, "code": STATUS[exc.error_type], "type": exc.error_type}
            else:
                body = {"error": exc.message, "error_type": exc.error_type}
            return web.json_response(body, status=STATUS[exc.error_type])
        except ValueError as exc:  # a body that is not JSON: serde's message, a Validation error
            return web.json_response({"error": str(exc), "error_type": "Validation"}, status=422)


def serve(args: dict, *, sock, addr: str, log: Logger, max_input_length: int) -> int:
    router = Router(args, log, max_input_length)
    app = web.Application(middlewares=[router.middleware], client_max_size=int(args["payload_limit"]))
    app.router.add_get("/health", router.health)
    app.router.add_get("/", router.health)
    app.router.add_get("/ping", router.health)
    app.router.add_get("/info", router.get_info)
    app.router.add_get("/metrics", router.metrics_text)
    app.router.add_post("/embed", router.embed)
    app.router.add_post("/rerank", router.rerank)
    app.router.add_post("/v1/embeddings", router.openai_embed)
    app.router.add_post("/embeddings", router.openai_embed)
    app.router.add_post("/", router.rerank if router.kind == "reranker" else router.embed)

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        log("INFO", "text_embeddings_router::http::server", "router/src/http/server.rs:1880",
            f"Starting HTTP server: {addr}")
        log("INFO", "text_embeddings_router::http::server", "router/src/http/server.rs:1881", "Ready")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log("INFO", "text_embeddings_router::shutdown", "router/src/shutdown.rs:31",
            "signal received, starting graceful shutdown")
        await runner.cleanup()

    asyncio.run(run())
    return 0
