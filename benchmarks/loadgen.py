"""The built-in load generator: `vllm bench serve`'s measurements against any OpenAI-style endpoint.

For hosts without the vLLM CLI, a TEI embedder, or the portal's own gateway (so a team sees the
gateway's overhead in its own numbers). It writes the same result keys as the tool, so the
portal stores, summarises and compares both alike.

Traffic: `num_prompts` requests after `num_warmups` untimed ones; request rate inf sends all at
once, a finite rate draws gamma-distributed gaps (shape = burstiness, mean = 1/rate; burstiness 1
is a Poisson process), `max_concurrency` caps requests in flight (time waiting for a slot is the
client queue time). The `random` dataset is words drawn with a fixed seed; token counts come from
the server's `usage`, so they are exact for whatever tokenizer the model has.
"""
import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from benchmarks import clients
from benchmarks.statistics import RequestOutput, calculate_metrics

_WORDS = (
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "are", "with", "as", "by", "be", "at", "this",
    "from", "or", "have", "an", "they", "which", "one", "you", "were", "all", "we", "when", "there", "can",
    "been", "has", "more", "if", "will", "would", "who", "so", "no", "about", "out", "many", "then", "them",
    "some", "could", "time", "these", "two", "may", "first", "water", "been", "call", "who", "oil", "its",
    "now", "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "over", "new", "sound",
    "take", "only", "little", "work", "know", "place", "year", "live", "me", "back", "give", "most", "very",
    "after", "thing", "our", "just", "name", "good", "sentence", "man", "think", "say", "great", "where",
    "help", "through", "much", "before", "line", "right", "too", "mean", "old", "any", "same", "tell", "boy",
    "follow", "came", "want", "show", "also", "around", "form", "three", "small", "set", "put", "end", "does",
    "another", "well", "large", "must", "big", "even", "such", "because", "turn", "here", "why", "ask", "went",
)


@dataclass
class LoadSpec:
    base_url: str
    model: str
    backend: str = "openai"
    endpoint: str = "/v1/completions"
    num_prompts: int = 100
    input_len: int = 512
    output_len: int = 256
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    seed: int = 0
    temperature: float | None = 0.0
    num_warmups: int = 0
    api_key: str = ""
    label: str | None = None


def random_prompts(*, count: int, input_len: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(input_len)) for _ in range(count)]


def _payload(spec: LoadSpec, prompt: str) -> dict:
    if spec.backend == "openai-embeddings":
        return {"model": spec.model, "input": prompt}
    body: dict = {"model": spec.model, "max_tokens": spec.output_len, "stream": True,
                  "stream_options": {"include_usage": True}, "ignore_eos": True}
    if spec.backend == "openai-chat":
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = body.pop("max_tokens")
    else:
        body["prompt"] = prompt
    if spec.temperature is not None:
        body["temperature"] = spec.temperature
    return body


def _arrival_gaps(spec: LoadSpec) -> list[float]:
    if spec.request_rate is None:
        return [0.0] * spec.num_prompts
    rng = random.Random(spec.seed)
    scale = 1.0 / (spec.request_rate * spec.burstiness)
    return [rng.gammavariate(spec.burstiness, scale) for _ in range(spec.num_prompts)]


async def _one(session, spec: LoadSpec, body: bytes, prompt_len: int, slot: asyncio.Semaphore | None,
               request_id: str) -> RequestOutput:
    output = RequestOutput(prompt_len=prompt_len)
    headers = {"x-request-id": request_id, "Content-Type": "application/json"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    url = spec.base_url.rstrip("/") + spec.endpoint
    queued = time.perf_counter()
    if slot is not None:
        await slot.acquire()
    try:
        output.queue_time = time.perf_counter() - queued
        if spec.backend == "openai-embeddings":
            return await clients.post_embeddings(session, url=url, body=body, headers=headers, output=output)
        return await clients.stream_generation(session, url=url, body=body, headers=headers, output=output)
    finally:
        if slot is not None:
            slot.release()


async def _worker(session, spec: LoadSpec, bodies: list[bytes], begin: float,
                  results: dict[int, RequestOutput]) -> None:
    """Rate inf with a concurrency cap: C workers take the next request as soon as they are free.

    The same schedule as C slots over requests that all arrived at t=0 (the tool's semaphore),
    without a parked task per request; the queue time is the wait since t=0.
    """
    while len(results) < len(bodies):
        index = len(results)
        results[index] = output = RequestOutput(prompt_len=spec.input_len)
        output.queue_time = time.perf_counter() - begin
        headers = {"x-request-id": f"bench-{index}", "Content-Type": "application/json"}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key}"
        url = spec.base_url.rstrip("/") + spec.endpoint
        if spec.backend == "openai-embeddings":
            await clients.post_embeddings(session, url=url, body=bodies[index], headers=headers, output=output)
        else:
            await clients.stream_generation(session, url=url, body=bodies[index], headers=headers, output=output)


async def _watch(should_stop: Callable[[], bool], tasks: list[asyncio.Task]) -> None:
    while True:
        await asyncio.sleep(0.5)
        if await asyncio.to_thread(should_stop):
            for task in tasks:
                task.cancel()
            return


class Cancelled(Exception):
    pass


async def run_load(spec: LoadSpec, *, should_stop: Callable[[], bool] | None = None) -> dict:
    """Warm up, send the timed requests, and return a result dict with the tool's keys."""
    prompts = random_prompts(count=spec.num_prompts, input_len=spec.input_len, seed=spec.seed)
    # Bodies are encoded before the clock starts: the timed window only sends and reads.
    bodies = [json.dumps(_payload(spec, p)).encode() for p in prompts]
    limit = spec.max_concurrency or 0
    slot = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None
    results: dict[int, RequestOutput] = {}
    async with clients.make_session(limit=limit) as session:
        warm = [_one(session, spec, bodies[i % len(bodies)], spec.input_len, None, f"warmup-{i}")
                for i in range(spec.num_warmups)]
        if warm:
            await asyncio.gather(*warm)
        tasks: list[asyncio.Task] = []
        watcher = asyncio.create_task(_watch(should_stop, tasks)) if should_stop else None
        begin = time.perf_counter()
        try:
            if spec.request_rate is None and spec.max_concurrency:
                tasks.extend(asyncio.create_task(_worker(session, spec, bodies, begin, results))
                             for _ in range(min(spec.max_concurrency, len(bodies))))
                await asyncio.gather(*tasks)
                outputs = [results[i] for i in range(len(bodies))]
            else:
                for i, (body, gap) in enumerate(zip(bodies, _arrival_gaps(spec), strict=True)):
                    if gap:
                        await asyncio.sleep(gap)
                    tasks.append(asyncio.create_task(_one(session, spec, body, spec.input_len, slot, f"bench-{i}")))
                outputs = await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            raise Cancelled("The benchmark was cancelled while requests were in flight.") from None
        finally:
            if watcher is not None:
                watcher.cancel()
        duration = time.perf_counter() - begin
    return build_result(spec, list(outputs), duration)


def build_result(spec: LoadSpec, outputs: list[RequestOutput], duration: float) -> dict:
    pooling = spec.backend == "openai-embeddings"
    metrics = calculate_metrics(outputs, duration=duration,
                                percentile_metrics=("e2el",) if pooling else ("ttft", "tpot", "itl", "e2el"))
    head = {
        "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": spec.backend, "backend": spec.backend, "label": spec.label,
        "model_id": spec.model, "tokenizer_id": spec.model, "num_prompts": spec.num_prompts,
        "request_rate": "inf" if spec.request_rate is None else spec.request_rate,
        "burstiness": spec.burstiness, "max_concurrency": spec.max_concurrency,
    }
    per_request = {
        "input_lens": [o.prompt_len for o in outputs], "output_lens": [o.output_tokens for o in outputs],
        "latencies": [o.latency for o in outputs], "queue_times": [o.queue_time for o in outputs],
        "errors": [o.error for o in outputs],
    }
    ordered = {**head, **{k: metrics[k] for k in ("duration", "completed", "failed", "total_input_tokens",
                                                  "total_output_tokens", "request_throughput", "request_goodput",
                                                  "output_throughput", "total_token_throughput")}}
    ordered.update(per_request)
    ordered.update({k: v for k, v in metrics.items() if k not in ordered})
    if pooling:
        # The summary needs these; for embeddings there is no first token, so TTFT is the whole latency.
        ordered.update({"median_ttft_ms": ordered["median_e2el_ms"], "p99_ttft_ms": ordered["p99_e2el_ms"],
                        "median_tpot_ms": 0.0, "median_itl_ms": 0.0})
    return ordered


def run_load_sync(spec: LoadSpec, *, should_stop: Callable[[], bool] | None = None) -> dict:
    return asyncio.run(run_load(spec, should_stop=should_stop))
