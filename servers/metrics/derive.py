"""Engine `/metrics`: cut out the families we chart, parse them with prometheus_client, derive interval figures.

A vLLM scrape is ~58 KB of ~660 lines, most of it histograms we never chart (token-count
histograms, HTTP metrics, process metrics). Parsing all of it with prometheus_client costs
several milliseconds a scrape, so `select_families` first cuts out only the wanted families'
blocks (the text format keeps each family's lines together, after its `# TYPE` line) and
prometheus_client parses just those.

`snapshot()` reduces one scrape to a small JSON-able dict (counters, gauges, histograms summed
over engines); `derive()` turns two consecutive snapshots into the figures of that interval:
rates from counter deltas, means from Δsum/Δcount, p50/p95 from bucket deltas with
Prometheus' `histogram_quantile` interpolation.
"""
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Family:
    key: str  # our name for it
    names: tuple[str, ...]  # exposed `# TYPE` names, current first, then older engines' names
    kind: str  # counter | gauge | histogram
    mean: bool = False  # gauges averaged over engines (a fraction) instead of summed (a count)
    buckets: bool = True  # histograms: False keeps only _sum/_count (a mean, no percentiles; parses faster)


VLLM_FAMILIES: tuple[Family, ...] = (
    Family("generation_tokens", ("vllm:generation_tokens_total",), "counter"),
    Family("prompt_tokens", ("vllm:prompt_tokens_total",), "counter"),
    Family("requests_finished", ("vllm:request_success_total",), "counter"),
    # Renamed in vLLM 0.9.2 and the old names removed in 0.12: fall back for older servers.
    Family("prefix_cache_queries", ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
           "counter"),
    Family("prefix_cache_hits", ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"), "counter"),
    Family("running", ("vllm:num_requests_running",), "gauge"),
    Family("waiting", ("vllm:num_requests_waiting",), "gauge"),
    Family("kv_cache_usage", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), "gauge", mean=True),
    Family("ttft", ("vllm:time_to_first_token_seconds",), "histogram"),
    # One observation per finished request: its mean is what vLLM reports as TPOT; ITL gives the percentiles.
    Family("tpot", ("vllm:request_time_per_output_token_seconds",), "histogram", buckets=False),
    Family("itl", ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"), "histogram"),
    Family("e2e", ("vllm:e2e_request_latency_seconds",), "histogram"),
)

# Text Embeddings Inference (metrics-exporter-prometheus: counters carry no `_total` suffix).
TEI_FAMILIES: tuple[Family, ...] = (
    Family("requests_finished", ("te_request_success",), "counter"),
    Family("requests_failed", ("te_request_failure",), "counter"),
    Family("waiting", ("te_queue_size",), "gauge"),
    Family("e2e", ("te_request_duration",), "histogram"),
    # One observation per input, valued at its token count: Δsum is the prompt tokens of the interval.
    Family("input_tokens", ("te_request_input_length",), "histogram"),
)

FAMILIES_BY_ENGINE = {"vllm": VLLM_FAMILIES, "tei": TEI_FAMILIES}
# TEI's exporter registers a metric at its first use: a router that has served nothing yet answers an
# empty /metrics, and a family missing from the body has counted nothing so far.
LAZY_ENGINES = {"tei"}
HISTOGRAM_FIGURES = ("ttft", "tpot", "itl", "e2e")


class MetricsError(ValueError):
    """A /metrics body that prometheus_client cannot parse."""


class Histogram(TypedDict):
    sum: float
    count: float
    buckets: list[list[float]]  # [[upper bound, cumulative count], ...] ascending, +Inf last


class Snapshot(TypedDict):
    at: float  # unix time the body was received
    counters: dict[str, float]
    gauges: dict[str, float]
    histograms: dict[str, Histogram]


class Figures(TypedDict, total=False):
    """The figures of one interval; None where the interval saw nothing to measure."""

    interval_s: float | None
    reset: bool
    generation_tps: float | None
    prompt_tps: float | None
    requests_per_s: float | None
    prefix_cache_hit_rate: float | None
    running: float | None
    waiting: float | None
    kv_cache_usage: float | None
    ttft_mean_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tpot_mean_s: float | None
    itl_mean_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    e2e_mean_s: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None


FIGURE_FIELDS: tuple[str, ...] = tuple(k for k in Figures.__annotations__ if k not in ("interval_s", "reset"))


def select_families(text: str, families: Iterable[Family]) -> str:
    """The lines of the given families only: each block runs from its `# TYPE` line to the next comment line.

    HELP lines are left out (the parser does not need them), and so are the `_bucket` lines of
    histograms charted by their mean only. The first of a family's names found wins; an absent
    name costs one `str.find` over the text.
    """
    blocks = []
    for family in families:
        for name in family.names:
            needle = f"# TYPE {name} "
            start = text.find(needle)
            while start > 0 and text[start - 1] != "\n":  # the needle inside some other line
                start = text.find(needle, start + 1)
            if start == -1:
                continue
            end = text.find("\n#", start + len(needle))
            block = text[start:] if end == -1 else text[start:end]
            if family.kind == "histogram" and not family.buckets:
                block = "\n".join(line for line in block.split("\n") if not line.startswith(name + "_bucket"))
            blocks.append(block)
            break
    return "\n".join(blocks) + "\n"


def _parser_name(name: str, kind: str) -> str:
    # prometheus_client names a counter family without its `_total` suffix.
    return name[:-6] if kind == "counter" and name.endswith("_total") else name


def snapshot(text: str, *, at: float, engine: str = "vllm") -> Snapshot:
    """Reduce one /metrics body to the wanted families, summed over label sets (engines, reasons)."""
    families = FAMILIES_BY_ENGINE[engine]
    try:
        parsed = {m.name: m for m in text_string_to_metric_families(select_families(text, families))}
    except ValueError as exc:
        raise MetricsError(f"The /metrics body is not in Prometheus text format: {exc}") from exc
    lazy = engine in LAZY_ENGINES and (not text.strip() or "# TYPE te_" in text)
    if not parsed and not lazy:
        names = ", ".join(family.names[0] for family in families[:3])
        raise MetricsError(f"The /metrics body has none of the {engine} engine's metrics ({names}, ...). "
                           "Is this the engine's port, and was it started without --disable-log-stats?")
    snap: Snapshot = {"at": at, "counters": {}, "gauges": {}, "histograms": {}}
    for family in families:
        metric = next((parsed[n] for n in (_parser_name(x, family.kind) for x in family.names) if n in parsed), None)
        if metric is None:
            if lazy:  # not used yet: it has counted nothing
                if family.kind == "counter":
                    snap["counters"][family.key] = 0.0
                elif family.kind == "gauge":
                    snap["gauges"][family.key] = 0.0
                else:
                    snap["histograms"][family.key] = {"sum": 0.0, "count": 0.0, "buckets": []}
            continue
        if family.kind == "counter":
            snap["counters"][family.key] = sum(s.value for s in metric.samples if s.name.endswith("_total"))
        elif family.kind == "gauge":
            values = [s.value for s in metric.samples]
            if values:
                snap["gauges"][family.key] = sum(values) / len(values) if family.mean else sum(values)
        else:
            snap["histograms"][family.key] = _histogram(metric.name, metric.samples)
    return snap


def _histogram(name: str, samples) -> Histogram:
    total = count = 0.0
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == name + "_bucket":
            le = float(s.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
        elif s.name == name + "_sum":
            total += s.value
        elif s.name == name + "_count":
            count += s.value
    return {"sum": total, "count": count, "buckets": [[le, c] for le, c in sorted(buckets.items())]}


def histogram_quantile(q: float, buckets: list[list[float]]) -> float | None:
    """Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding rank q·count.

    `buckets` are cumulative [[upper, count], ...] with +Inf last. None when there are no
    observations. A rank in the +Inf bucket returns the highest finite bound, as Prometheus does.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_upper, prev_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return prev_upper
            if count == prev_count:
                return upper
            if prev_upper == 0.0 and upper <= 0:
                return upper
            return prev_upper + (upper - prev_upper) * (rank - prev_count) / (count - prev_count)
        prev_upper, prev_count = upper, count
    return prev_upper


def _delta_buckets(prev: Histogram, cur: Histogram) -> list[list[float]] | None:
    if not prev["buckets"] and not prev["count"]:
        return cur["buckets"]  # nothing observed before (a lazily registered TEI histogram): all of it is new
    before = dict((le, c) for le, c in prev["buckets"])
    out = []
    for le, c in cur["buckets"]:
        if le not in before:
            return None  # re-bucketed between scrapes: the interval cannot be split
        out.append([le, c - before[le]])
    return out


def _div(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def derive(prev: Snapshot | None, cur: Snapshot) -> Figures:
    """The figures of the interval between two snapshots of one server.

    1. Gauges (running, waiting, KV-cache usage) are read from `cur` alone.
    2. Without `prev`, or when a counter went down (the engine restarted), only gauges are given.
    3. Rates are Δcounter / Δt; means Δsum / Δcount; p50/p95 from the bucket deltas; the
       prefix-cache hit rate Δhits / Δqueries. A histogram with no new observations gives None.
    """
    gauges = cur["gauges"]
    figures: Figures = {key: None for key in FIGURE_FIELDS}  # type: ignore[assignment]
    figures.update(interval_s=None, reset=False, running=gauges.get("running"), waiting=gauges.get("waiting"),
                   kv_cache_usage=gauges.get("kv_cache_usage"))
    if prev is None:
        return figures
    dt = cur["at"] - prev["at"]
    if dt <= 0:
        return figures
    figures["interval_s"] = dt
    counters = {k: v - prev["counters"][k] for k, v in cur["counters"].items() if k in prev["counters"]}
    hists = {k: (prev["histograms"][k], h) for k, h in cur["histograms"].items() if k in prev["histograms"]}
    if any(v < 0 for v in counters.values()) or any(c["count"] < p["count"] for p, c in hists.values()):
        figures["reset"] = True
        return figures

    def rate(key: str) -> float | None:
        return counters[key] / dt if key in counters else None

    figures["generation_tps"] = rate("generation_tokens")
    figures["prompt_tps"] = rate("prompt_tokens")
    figures["requests_per_s"] = rate("requests_finished")
    if "prefix_cache_hits" in counters and "prefix_cache_queries" in counters:
        figures["prefix_cache_hit_rate"] = _div(counters["prefix_cache_hits"], counters["prefix_cache_queries"])
    if "input_tokens" in hists:
        p, c = hists["input_tokens"]
        figures["prompt_tps"] = (c["sum"] - p["sum"]) / dt
    for key in HISTOGRAM_FIGURES:
        if key not in hists:
            continue
        p, c = hists[key]
        figures[f"{key}_mean_s"] = _div(c["sum"] - p["sum"], c["count"] - p["count"])  # type: ignore[literal-required]
        delta = _delta_buckets(p, c) if c["buckets"] else None
        if delta is not None:
            figures[f"{key}_p50_s"] = histogram_quantile(0.50, delta)  # type: ignore[literal-required]
            figures[f"{key}_p95_s"] = histogram_quantile(0.95, delta)  # type: ignore[literal-required]
    return figures


def engine_of(server_argv: list[str] | None) -> str:
    """Which exposition a server speaks, from its command line: TEI's router, else vLLM."""
    first = (server_argv or [""])[0]
    return "tei" if first.rsplit("/", 1)[-1].startswith("text-embeddings-router") else "vllm"
