"""How much CPU does scraping an engine's /metrics cost? Run: .venv/bin/python perf/metrics_scrape.py

Times three ways of getting the charted figures out of the reference vLLM scrape (58 KB):
  full    prometheus_client's parser over the whole body (the baseline);
  portal  servers.metrics: cut out the wanted families, parse those with prometheus_client,
          reduce, and derive the interval figures from the previous snapshot;
  notes   the field notes' `_parse_metric`: one scan of all lines per value (sums and counts
          only; it cannot give percentiles, which would need one more scan per bucket).
Prints one line with the portal/full ratio (target <= 1/3) and the share of one core that
20 servers scraped every 2 s would take, and appends a row to perf/RESULTS.md.
"""
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from servers.metrics import derive  # noqa: E402

REFERENCE = ROOT / "tests" / "fixtures" / "vllm"  # the reference scrapes, copied verbatim
SERVERS, PERIOD_S = 20, 2.0

# The values the field notes read: counters, gauges, and histogram sums and counts.
NOTES_NAMES = [
    "vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:request_success_total",
    "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_requests_running",
    "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
] + [f"vllm:{h}_{part}" for h in ("time_to_first_token_seconds", "request_time_per_output_token_seconds",
                                  "inter_token_latency_seconds", "e2e_request_latency_seconds")
     for part in ("sum", "count")]


def _parse_metric(name: str, text: str) -> float:
    """The field notes' parser, verbatim: the last line that starts with the name wins."""
    val = 0.0
    for line in text.split("\n"):
        if line.startswith(name + "{") or line.startswith(name + " "):
            parts = line.rsplit(" ", 1)
            if len(parts) == 2:
                try:  # noqa: SIM105 - quoted as the field notes wrote it
                    val = float(parts[1])
                except ValueError:
                    pass
    return val


def cpu_per_call(fns: dict, *, rounds: int = 7) -> dict:
    """Median CPU seconds per call of each function, measured in interleaved rounds.

    CPU time (not wall time) because the question is the share of a core, and because other
    processes on a busy machine stretch wall time; interleaving keeps load changes from
    favouring one contender.
    """
    batch = {}
    for name, fn in fns.items():
        fn()
        n = 1
        while True:
            t = time.process_time()
            for _ in range(n):
                fn()
            if time.process_time() - t > 0.05:
                break
            n *= 2
        batch[name] = n
    samples: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.process_time()
            for _ in range(batch[name]):
                fn()
            samples[name].append((time.process_time() - t) / batch[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    t0 = (REFERENCE / "metrics_t0.txt").read_text()
    t1 = (REFERENCE / "metrics_t1.txt").read_text()
    prev = derive.snapshot(t0, at=0.0)

    timings = cpu_per_call({
        "full": lambda: list(text_string_to_metric_families(t1)),
        "portal": lambda: derive.derive(prev, derive.snapshot(t1, at=10.0)),
        "notes": lambda: [_parse_metric(n, t1) for n in NOTES_NAMES],
    })
    full, portal, notes = timings["full"], timings["portal"], timings["notes"]
    figures = derive.derive(prev, derive.snapshot(t1, at=10.0))
    assert round(figures["generation_tps"], 1) == 205.7, figures  # the measured path computes the right thing

    ratio = portal / full
    share = portal * SERVERS / PERIOD_S * 100
    notes_share = notes * SERVERS / PERIOD_S * 100
    numbers = (f"CPU per scrape: portal {portal * 1e3:.2f} ms (select + parse + derive), full prometheus_client parse "
               f"{full * 1e3:.2f} ms, field notes' scan-per-value {notes * 1e3:.2f} ms ({len(NOTES_NAMES)} values, "
               f"no percentiles); {SERVERS} servers every {PERIOD_S:g} s = {share:.2f}% of one core "
               f"(notes' way {notes_share:.2f}%)")
    verdict = f"ratio {ratio:.3f} (target <= 0.333)"
    print(f"metrics_scrape: {numbers}; {verdict}")
    results = ROOT / "perf" / "RESULTS.md"
    if not results.exists():
        results.write_text("# Performance results\n\nEach benchmark in `perf/` appends one row per run: date (UTC), "
                           "benchmark, machine, numbers, ratio.\n\n"
                           "| date | benchmark | machine | numbers | ratio |\n|---|---|---|---|---|\n")
    machine = f"{os.cpu_count()} CPU {platform.machine()}, Python {platform.python_version()}"
    with results.open("a") as fh:
        fh.write(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | metrics_scrape | {machine} | {numbers} | {verdict} |\n")

if __name__ == "__main__":
    main()
