"""Engine statistics of the fake vLLM: prometheus_client metrics with vLLM 0.33.0's names (less those 0.26.0
lacks when it plays 0.26), a toy tokenizer, and a block-hash prefix cache, so that /metrics moves the way a
real engine's does."""
from __future__ import annotations

import re
import time
import zlib

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary

from tests.fakes.vllm_metrics_spec import FAMILIES, NOT_IN_026
from tests.fakes.vllm_serve import AS_026

_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
ANSWER = ("Hello! This is the stand-in engine answering one token at a time, the way a real vLLM server "
          "streams its output to the client that asked for it.")


def split_pieces(text: str) -> list[str]:
    """The toy tokenizer's pieces of a text (one token each)."""
    return _PIECE.findall(text or "")


class Tokenizer:
    """Deterministic and reversible within one process: a word piece gets a stable id."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in split_pieces(text):
            token = zlib.crc32(piece.encode()) % 151_000 + 100
            self.by_id.setdefault(token, piece)
            ids.append(token)
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.by_id.get(int(i), "") for i in ids)

    def answer(self, n: int) -> list[str]:
        pieces = _PIECE.findall(ANSWER)
        return [pieces[i % len(pieces)] for i in range(n)]


class _Absent:
    """A family this version does not expose: updates go nowhere."""

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class EngineStats:
    """vLLM's PrometheusStatLogger families, registered on the default registry like vLLM does."""

    def __init__(self, *, model_name: str, cfg) -> None:
        self.model_name = model_name
        self.block_size = cfg.block_size
        self.capacity_tokens = cfg.num_gpu_blocks * cfg.block_size
        self.prefix_caching = cfg.enable_prefix_caching
        self.cached_blocks: set[int] = set()
        self.running: dict[str, int] = {}  # request id -> tokens held in KV cache
        self.m: dict[str, object] = {}
        for kind, name, doc, labels, buckets, eager in FAMILIES:
            if not name.startswith("vllm:") or (AS_026 and name in NOT_IN_026):
                continue
            self.m[name] = self._make(kind, name, doc, labels, buckets)
            for values in eager or [()]:
                self._child(name, *values)
        self._cache_info(cfg)
        spec = {f[1]: f for f in FAMILIES}
        self.http_requests = Counter("http_requests", spec["http_requests"][2], list(spec["http_requests"][3]))
        self.http_request_size = Summary("http_request_size_bytes", spec["http_request_size_bytes"][2], ["handler"])
        self.http_response_size = Summary("http_response_size_bytes", spec["http_response_size_bytes"][2],
                                          ["handler"])
        highr = spec["http_request_duration_highr_seconds"]
        self.http_highr = Histogram(highr[1], highr[2], buckets=highr[4])
        few = spec["http_request_duration_seconds"]
        self.http_duration = Histogram(few[1], few[2], list(few[3]), buckets=few[4])
        self.last_log = (time.monotonic(), 0.0, 0.0, 0.0, 0.0)
        self.idle_logs = 0

    def _make(self, kind, name, doc, labels, buckets):
        if kind == "counter":
            return Counter(name, doc, list(labels))
        if kind == "gauge":
            return Gauge(name, doc, list(labels))
        return Histogram(name, doc, list(labels), buckets=list(buckets))

    def _child(self, name: str, *values: str):
        metric = self.m.get(name)
        if metric is None:
            return _Absent()
        labels = {"engine": "0", "model_name": self.model_name}
        extra = [n for n in metric._labelnames if n not in labels]
        labels.update(dict(zip(extra, values, strict=False)))
        return metric.labels(**{n: labels[n] for n in metric._labelnames})

    def _cache_info(self, cfg) -> None:
        info = {"_block_size_resolved": "True", "block_size": str(cfg.block_size), "cache_dtype": "auto",
                "enable_prefix_caching": str(cfg.enable_prefix_caching), "engine": "0",
                "gpu_memory_utilization": str(cfg.gpu_memory_utilization), "num_cpu_blocks": "0",
                "num_gpu_blocks": str(cfg.num_gpu_blocks), "kv_cache_size_tokens": str(self.capacity_tokens),
                "kv_cache_max_concurrency": f"{self.capacity_tokens / cfg.max_model_len:.2f}",
                "prefix_caching_hash_algo": "sha256", "sliding_window": "None"}
        gauge = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", sorted(info))
        gauge.labels(**info).set(1)

    def v(self, name: str, *values: str):
        return self._child(name, *values)

    # --- one request's life -----------------------------------------------------------------------
    def admit(self, request_id: str, prompt_ids: list[int]) -> int:
        """Prefix-cache lookup at scheduling; returns the number of cached prompt tokens."""
        hits = 0
        if self.prefix_caching:
            parent = 0
            full_blocks = (len(prompt_ids) - 1) // self.block_size  # never the last prompt token
            for index in range(full_blocks):
                block = prompt_ids[index * self.block_size:(index + 1) * self.block_size]
                parent = zlib.crc32(repr((parent, block)).encode())
                if parent in self.cached_blocks and hits == index * self.block_size:
                    hits += self.block_size
                self.cached_blocks.add(parent)
        self.v("vllm:prefix_cache_queries").inc(len(prompt_ids))
        self.v("vllm:prefix_cache_hits").inc(hits)
        self.running[request_id] = len(prompt_ids)
        self._gauges()
        return hits

    def first_token(self, *, prompt_len: int, cached: int, ttft: float) -> None:
        computed = prompt_len - cached
        self.v("vllm:prompt_tokens").inc(prompt_len)
        self.v("vllm:prompt_tokens_by_source", "local_compute").inc(computed)
        self.v("vllm:prompt_tokens_by_source", "local_cache_hit").inc(cached)
        self.v("vllm:prompt_tokens_cached").inc(cached)
        self.v("vllm:prompt_tokens_cached_by_source", "device").inc(cached)
        self.v("vllm:time_to_first_token_seconds").observe(ttft)
        self.v("vllm:iteration_tokens_total").observe(computed + 1)
        self.v("vllm:generation_tokens").inc()

    def next_token(self, request_id: str, gap: float) -> None:
        self.v("vllm:generation_tokens").inc()
        self.v("vllm:inter_token_latency_seconds").observe(gap)
        self.v("vllm:iteration_tokens_total").observe(1)
        self.running[request_id] = self.running.get(request_id, 0) + 1
        self._gauges()

    def finish(self, request_id: str, *, reason: str, prompt_len: int, cached: int, n_out: int, max_tokens: int,
               arrival: float, first: float | None, end: float) -> None:
        self.running.pop(request_id, None)
        self._gauges()
        self.v("vllm:request_success", reason).inc()
        e2e = end - arrival
        self.v("vllm:e2e_request_latency_seconds").observe(e2e)
        self.v("vllm:request_queue_time_seconds").observe(0.0)
        prefill = (first or end) - arrival
        self.v("vllm:request_prefill_time_seconds").observe(prefill)
        self.v("vllm:request_decode_time_seconds").observe(end - (first or end))
        self.v("vllm:request_inference_time_seconds").observe(e2e)
        tpot = (end - first) / (n_out - 1) if first and n_out > 1 else 0.0
        self.v("vllm:request_time_per_output_token_seconds").observe(tpot)
        self.v("vllm:request_prompt_tokens").observe(prompt_len)
        self.v("vllm:request_generation_tokens").observe(n_out)
        self.v("vllm:request_max_num_generation_tokens").observe(max_tokens)
        self.v("vllm:request_params_max_tokens").observe(max_tokens)
        self.v("vllm:request_params_n").observe(1)
        self.v("vllm:request_num_preemptions").observe(0)
        self.v("vllm:request_prefill_kv_computed_tokens").observe(prompt_len - cached)

    def _gauges(self) -> None:
        self.v("vllm:num_requests_running").set(len(self.running))
        self.v("vllm:num_requests_waiting").set(0)
        self.v("vllm:kv_cache_usage_perc").set(min(1.0, sum(self.running.values()) / self.capacity_tokens))

    def stats_line(self) -> str | None:
        """vLLM's periodic `Engine 000: Avg prompt throughput ...` line; None when idle twice in a row."""
        now = time.monotonic()
        prompt = self.v("vllm:prompt_tokens_by_source", "local_compute")._value.get()
        gen = self.v("vllm:generation_tokens")._value.get()
        queries = self.v("vllm:prefix_cache_queries")._value.get()
        hits = self.v("vllm:prefix_cache_hits")._value.get()
        then, p0, g0, q0, h0 = self.last_log
        self.last_log = (now, prompt, gen, queries, hits)
        span = max(now - then, 1e-6)
        idle = prompt == p0 and gen == g0 and not self.running
        self.idle_logs = self.idle_logs + 1 if idle else 0
        if self.idle_logs > 1:
            return None
        rate = (hits - h0) / (queries - q0) * 100 if queries > q0 else 0.0
        usage = sum(self.running.values()) / self.capacity_tokens * 100
        return (f"Engine 000: Avg prompt throughput: {(prompt - p0) / span:.1f} tokens/s, Avg generation throughput: "
                f"{(gen - g0) / span:.1f} tokens/s, Running: {len(self.running)} reqs, Waiting: 0 reqs, "
                f"GPU KV cache usage: {usage:.1f}%, Prefix cache hit rate: {rate:.1f}%")


def registry():
    return REGISTRY
