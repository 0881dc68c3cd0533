"""servers.metrics on the two reference vLLM scrapes (10.0 s apart) and on TEI's exposition.

The expected numbers are the ones the vLLM reference README states for these two files.
"""
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers.metrics import derive
from servers.models import ServerMetricSample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vllm"
T0 = (FIXTURES / "metrics_t0.txt").read_text()
T1 = (FIXTURES / "metrics_t1.txt").read_text()


@pytest.fixture(scope="module")
def figures():
    return derive.derive(derive.snapshot(T0, at=1000.0), derive.snapshot(T1, at=1010.0))


def test_throughput_and_cache_figures_match_the_reference(figures):
    assert figures["interval_s"] == 10.0
    assert figures["reset"] is False
    assert figures["generation_tps"] == pytest.approx(205.7)
    assert figures["prompt_tps"] == pytest.approx(1075.2)
    assert figures["requests_per_s"] == pytest.approx(1.6)
    assert figures["prefix_cache_hit_rate"] == pytest.approx(1 / 3)


def test_latency_means_match_the_reference(figures):
    assert figures["ttft_mean_s"] == pytest.approx(1.274091, abs=1e-6)
    assert figures["itl_mean_s"] == pytest.approx(0.0772203, abs=1e-7)
    assert figures["e2e_mean_s"] == pytest.approx(12.586255, abs=1e-6)
    assert figures["tpot_mean_s"] == pytest.approx(0.0784882, abs=1e-7)


def test_percentiles_from_bucket_deltas_match_the_reference(figures):
    assert figures["ttft_p50_s"] == pytest.approx(1.25)
    assert figures["ttft_p95_s"] == pytest.approx(4.125)
    assert figures["itl_p50_s"] == pytest.approx(0.063812, abs=1e-6)
    assert figures["itl_p95_s"] == pytest.approx(0.175514, abs=1e-6)
    assert figures["e2e_p50_s"] == pytest.approx(12.5)
    assert figures["e2e_p95_s"] == pytest.approx(14.75)


def test_gauges_are_read_from_the_newer_scrape(figures):
    assert figures["running"] == 14
    assert figures["waiting"] == 0
    assert figures["kv_cache_usage"] == pytest.approx(0.043377483443708606)


def test_the_selected_families_parse_to_the_same_values_as_a_full_parse():
    full = {m.name: m for m in text_string_to_metric_families(T1)}
    snap = derive.snapshot(T1, at=0.0)
    assert snap["counters"]["generation_tokens"] == full["vllm:generation_tokens"].samples[0].value == 13675
    assert snap["counters"]["requests_finished"] == sum(s.value for s in full["vllm:request_success"].samples)
    ttft = full["vllm:time_to_first_token_seconds"].samples
    assert snap["histograms"]["ttft"]["buckets"] == [
        [float(s.labels["le"]), s.value] for s in ttft if s.name.endswith("_bucket")]
    assert snap["histograms"]["ttft"]["count"] == 114
    # TPOT is charted by its mean only, so its buckets are never parsed.
    assert snap["histograms"]["tpot"]["buckets"] == []
    assert snap["histograms"]["tpot"]["count"] == 100


def test_the_first_scrape_gives_gauges_only():
    figures = derive.derive(None, derive.snapshot(T0, at=0.0))
    assert figures["running"] == 16 and figures["waiting"] == 2
    assert figures["kv_cache_usage"] == pytest.approx(0.04875827814569537)
    assert figures["interval_s"] is None
    assert figures["generation_tps"] is None and figures["ttft_mean_s"] is None


def test_a_restarted_engine_gives_no_rates_for_that_interval():
    figures = derive.derive(derive.snapshot(T1, at=0.0), derive.snapshot(T0, at=5.0))
    assert figures["reset"] is True
    assert figures["generation_tps"] is None and figures["prefix_cache_hit_rate"] is None
    assert figures["running"] == 16


def test_an_idle_interval_has_zero_rates_and_no_latencies():
    figures = derive.derive(derive.snapshot(T1, at=0.0), derive.snapshot(T1, at=5.0))
    assert figures["generation_tps"] == 0 and figures["requests_per_s"] == 0
    assert figures["ttft_mean_s"] is None and figures["ttft_p95_s"] is None
    assert figures["prefix_cache_hit_rate"] is None


def test_older_vllm_metric_names_are_understood():
    def as_old_vllm(text: str) -> str:
        return (text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
                .replace("vllm:prefix_cache_", "vllm:gpu_prefix_cache_")
                .replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))

    old = derive.derive(derive.snapshot(as_old_vllm(T0), at=0.0), derive.snapshot(as_old_vllm(T1), at=10.0))
    assert old["prefix_cache_hit_rate"] == pytest.approx(1 / 3)
    assert old["itl_p95_s"] == pytest.approx(0.175514, abs=1e-6)
    assert old["kv_cache_usage"] == pytest.approx(0.043377483443708606)


def test_data_parallel_engines_are_summed_and_kv_usage_averaged():
    def two_engines(text: str) -> str:
        lines = []
        for line in text.splitlines():
            lines.append(line)
            if line.startswith("vllm:") and 'engine="0"' in line:
                lines.append(line.replace('engine="0"', 'engine="1"'))
        return "\n".join(lines) + "\n"

    figures = derive.derive(derive.snapshot(two_engines(T0), at=0.0), derive.snapshot(two_engines(T1), at=10.0))
    assert figures["generation_tps"] == pytest.approx(2 * 205.7)
    assert figures["running"] == 28
    assert figures["kv_cache_usage"] == pytest.approx(0.043377483443708606)
    assert figures["ttft_mean_s"] == pytest.approx(1.274091, abs=1e-6)
    assert figures["ttft_p95_s"] == pytest.approx(4.125)


def test_histogram_quantile_follows_prometheus():
    inf = float("inf")
    assert derive.histogram_quantile(0.5, [[1.0, 0], [2.0, 0], [inf, 0]]) is None
    assert derive.histogram_quantile(0.5, [[1.0, 4], [2.0, 8], [inf, 8]]) == pytest.approx(1.0)
    assert derive.histogram_quantile(0.25, [[1.0, 4], [2.0, 8], [inf, 8]]) == pytest.approx(0.5)
    # A rank in the +Inf bucket answers the highest finite bound.
    assert derive.histogram_quantile(0.95, [[1.0, 1], [2.0, 2], [inf, 10]]) == 2.0


def test_a_body_that_is_not_prometheus_text_is_refused_clearly():
    body = "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{engine=0} 5\n"
    with pytest.raises(derive.MetricsError, match="not in Prometheus text format"):
        derive.snapshot(body, at=0.0)


def test_every_figure_has_a_column():
    columns = {f.name for f in ServerMetricSample._meta.get_fields()}
    assert set(derive.FIGURE_FIELDS) <= columns


# --- Text Embeddings Inference -------------------------------------------------------------

TEI_DURATION_BUCKETS = [1.5e-5 * 1.5**k for k in range(35)]


def tei_body(*, single: int, batch: int, durations: list[float], input_tokens: list[int], queue: int) -> str:
    """A TEI 1.9 /metrics body as metrics-exporter-prometheus renders it: TYPE lines, no `_total` suffix."""
    done = single + batch

    def histogram(name: str, values: list[float], bounds: list[float]) -> list[str]:
        lines = [f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{le="{b}"}} {sum(v <= b for v in values)}' for b in bounds]
        lines += [f'{name}_bucket{{le="+Inf"}} {len(values)}', f"{name}_sum {sum(values)}",
                  f"{name}_count {len(values)}", ""]
        return lines

    lines = ["# TYPE te_request_count counter", f'te_request_count{{method="single"}} {single}',
             f'te_request_count{{method="batch"}} {batch}', "",
             "# TYPE te_request_success counter", f'te_request_success{{method="single"}} {single}',
             f'te_request_success{{method="batch"}} {batch}', "",
             "# TYPE te_embed_count counter", f"te_embed_count {done}", "",
             "# TYPE te_queue_size gauge", f"te_queue_size {queue}", ""]
    lines += histogram("te_request_duration", durations, TEI_DURATION_BUCKETS)
    lines += histogram("te_request_input_length", [float(t) for t in input_tokens], [2.0**k for k in range(10)])
    return "\n".join(lines) + "\n"


def test_tei_metrics_give_requests_tokens_latency_and_queue():
    before = tei_body(single=10, batch=2, durations=[0.01] * 12, input_tokens=[20] * 14, queue=0)
    after = tei_body(single=30, batch=2, durations=[0.01] * 12 + [0.02] * 19 + [0.5], input_tokens=[20] * 14
                     + [50] * 20, queue=3)
    figures = derive.derive(derive.snapshot(before, at=0.0, engine="tei"),
                             derive.snapshot(after, at=4.0, engine="tei"))
    assert figures["requests_per_s"] == pytest.approx(20 / 4)
    assert figures["prompt_tps"] == pytest.approx(20 * 50 / 4)
    assert figures["e2e_mean_s"] == pytest.approx((19 * 0.02 + 0.5) / 20)
    assert 0.013 < figures["e2e_p50_s"] <= 0.0205  # inside the geometric bucket that holds 0.02 s
    assert figures["waiting"] == 3
    assert figures["generation_tps"] is None and figures["kv_cache_usage"] is None


def test_the_engine_is_told_by_the_command_line():
    assert derive.engine_of(["/opt/tei/bin/text-embeddings-router", "--model-id", "x"]) == "tei"
    assert derive.engine_of(["/opt/vllm/bin/vllm", "serve", "x"]) == "vllm"
    assert derive.engine_of([]) == "vllm"


def test_a_body_without_engine_metrics_says_what_to_check():
    process_only = T1.split("# HELP vllm:")[0]  # what --disable-log-stats leaves
    with pytest.raises(derive.MetricsError) as error:
        derive.snapshot(process_only, at=0.0)
    assert str(error.value) == (
        "The /metrics body has none of the vllm engine's metrics (vllm:generation_tokens_total, "
        "vllm:prompt_tokens_total, vllm:request_success_total, ...). Is this the engine's port, and was it "
        "started without --disable-log-stats?")


def test_a_real_026_scrape_derives_its_figures():
    # Real vLLM 0.26.0 on an H100 (a tiny model), before and after three chat requests: it lacks some 0.33
    # families (admission_rejections, prompt_tokens_cached_by_source, request_num_preemptions) but none the
    # portal reads.
    real = Path(__file__).resolve().parent.parent / "fixtures" / "vllm-0.26"
    before = derive.snapshot((real / "metrics1.txt").read_text(), at=0.0)
    after = derive.snapshot((real / "metrics2.txt").read_text(), at=10.0)
    figures = derive.derive(before, after)
    assert figures["generation_tps"] == pytest.approx(4.0)
    assert figures["prompt_tps"] == pytest.approx(5.5)
    assert figures["requests_per_s"] == pytest.approx(0.3)
    assert figures["prefix_cache_hit_rate"] == pytest.approx(16 / 55)
    assert all(figures[f"{name}_mean_s"] is not None for name in ("ttft", "tpot", "itl", "e2e"))
    assert figures["ttft_p50_s"] is not None and figures["reset"] is False
