"""The statistics of one benchmark repeat and of several repeats.

Definitions follow `vllm bench serve` (vllm/benchmarks/serve.py, `calculate_metrics`), so the
built-in load generator and the engine's tool report comparable numbers:

- TTFT: send -> first chunk carrying `choices`; statistics over successful requests.
- TPOT per request: (latency - ttft) / (output_len - 1), only for output_len > 1.
- ITL: the gaps between chunks, pooled over all requests.
- E2EL: send -> end of stream.
- Percentiles: numpy's default (linear interpolation); std is the population std (ddof=0).
- Throughputs: totals over successful requests divided by the wall duration of the main run.
- Peaks: per 1-second bucket from the first send, tokens placed at start + ttft + cumulative ITLs.
"""
import math
from dataclasses import dataclass, field

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)


@dataclass
class RequestOutput:
    """What one request measured (seconds), the same fields `vllm bench serve` keeps."""

    success: bool = False
    prompt_len: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    start_time: float = 0.0
    queue_time: float = 0.0
    generated_text: str = ""
    error: str = ""


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile(values, q) with linear interpolation."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lower = math.floor(k)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (k - lower)


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def median(values: list[float]) -> float:
    return percentile(values, 50.0)


def std(values: list[float]) -> float:
    if not values:
        return 0.0
    mu = mean(values)
    return math.sqrt(math.fsum((v - mu) ** 2 for v in values) / len(values))


def percentile_label(p: float) -> str:
    """`p99`, `p50`, `p99.9`: integers print without `.0`, as the tool's keys do."""
    return f"p{int(p)}" if float(p).is_integer() else f"p{p}"


def _peaks(outputs: list[RequestOutput]) -> tuple[float, int]:
    done = [o for o in outputs if o.success]
    if not done:
        return 0.0, 0
    first = min(o.start_time for o in done)
    last = max(o.start_time + o.latency for o in done)
    buckets = int(math.ceil(last - first)) + 1
    tokens = [0] * buckets
    running = [0] * buckets
    for out in done:
        now = out.start_time + out.ttft
        times = [now]
        for gap in out.itl:
            now += gap
            times.append(now)
        for t in times:
            bucket = int(t - first)
            if 0 <= bucket < buckets:
                tokens[bucket] += 1
        for second in range(int(out.start_time - first), int(out.start_time + out.latency - first) + 1):
            if 0 <= second < buckets:
                running[second] += 1
    return float(max(tokens)), int(max(running))


def calculate_metrics(outputs: list[RequestOutput], *, duration: float,
                      percentile_metrics: tuple[str, ...] = PERCENTILE_METRICS,
                      percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> dict:
    """Aggregate keys of the tool's result file, in its order, from per-request outputs."""
    done = [o for o in outputs if o.success]
    total_input = sum(o.prompt_len for o in done)
    total_output = sum(o.output_tokens for o in done)
    series = {
        "ttft": [o.ttft for o in done],
        "tpot": [(o.latency - o.ttft) / (o.output_tokens - 1) for o in done if o.output_tokens > 1],
        "itl": [gap for o in done for gap in o.itl],
        "e2el": [o.latency for o in done],
    }
    peak_tokens, peak_running = _peaks(outputs)
    result: dict = {
        "duration": duration,
        "completed": len(done),
        "failed": len(outputs) - len(done),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(done) / duration if duration > 0 else 0.0,
        "request_goodput": None,
        "output_throughput": total_output / duration if duration > 0 else 0.0,
        "total_token_throughput": (total_input + total_output) / duration if duration > 0 else 0.0,
        "max_output_tokens_per_s": peak_tokens,
        "max_concurrent_requests": peak_running,
        "rtfx": 0.0,
    }
    for name in percentile_metrics:
        values = series[name]
        result[f"mean_{name}_ms"] = mean(values) * 1000
        result[f"median_{name}_ms"] = median(values) * 1000
        result[f"std_{name}_ms"] = std(values) * 1000
        for p in percentiles:
            result[f"{percentile_label(p)}_{name}_ms"] = percentile(values, p) * 1000
    return result


def spread_pct(values: list[float]) -> float | None:
    """(max - min) / median of the repeats, in percent: the field notes' noise floor measure."""
    if len(values) < 2:
        return 0.0 if values else None
    mid = median(values)
    if mid == 0:
        return None
    return (max(values) - min(values)) / abs(mid) * 100.0
