"""The built-in load generator measures what `vllm bench serve` measures, against any endpoint."""
import json
import subprocess

import pytest

from benchmarks.loadgen import Cancelled, LoadSpec, run_load_sync
from tests.benchmarks.conftest import FAKE_VLLM
from tests.benchmarks.test_statistics import REFERENCE


def test_it_writes_the_tool_keys_and_exact_token_counts(fake_vllm_server):
    result = run_load_sync(LoadSpec(base_url=fake_vllm_server.url, model="qwen3-8b", num_prompts=12, input_len=20,
                                    output_len=9, num_warmups=2, max_concurrency=4))
    real = json.loads((REFERENCE / "bench_serve_result.json").read_text())
    shared = [k for k in real if k in result]
    assert shared == [k for k in result if k in real]  # same order
    assert {k for k in real if k.endswith("_ms")} <= set(result)
    assert result["completed"] == 12 and result["failed"] == 0
    assert result["total_output_tokens"] == 12 * 9  # from the engine's usage chunk
    assert result["total_input_tokens"] > 0
    assert result["max_concurrency"] == 4 and max(result["queue_times"]) > 0


def test_scripted_delays_bound_the_measured_latencies(scripted_upstream):
    """TTFT and TPOT come out at or above the scripted delays (10% slack for timer granularity);
    the 5% accuracy figure is measured by perf/loadgen.py."""
    result = run_load_sync(LoadSpec(base_url=scripted_upstream.url, model="stub-model", num_prompts=8, input_len=10,
                                    output_len=6, max_concurrency=2))
    assert result["median_ttft_ms"] >= 40.0
    assert result["median_tpot_ms"] >= 8.0 * 0.9
    assert result["median_e2el_ms"] >= (40.0 + 5 * 8.0) * 0.9


def test_it_agrees_with_the_tool_on_the_same_upstream(scripted_upstream, tmp_path):
    """Same server, same workload: both tools count the same tokens and see the scripted shape."""
    done = subprocess.run([FAKE_VLLM, "bench", "serve", "--base-url", scripted_upstream.url, "--model", "stub-model",
                           "--random-input-len", "10", "--random-output-len", "6", "--num-prompts", "8",
                           "--max-concurrency", "2", "--percentile-metrics", "ttft,tpot,itl,e2el",
                           "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(tmp_path),
                           "--result-filename", "tool.json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    tool = json.loads((tmp_path / "tool.json").read_text())
    ours = run_load_sync(LoadSpec(base_url=scripted_upstream.url, model="stub-model", num_prompts=8, input_len=10,
                                  output_len=6, max_concurrency=2))
    for key in ("completed", "failed", "total_output_tokens", "num_prompts", "max_concurrency"):
        assert ours[key] == tool[key], key
    for key in ("median_ttft_ms", "median_tpot_ms", "median_itl_ms"):
        assert ours[key] == pytest.approx(tool[key], rel=0.5), key


def test_chat_and_embeddings_endpoints(fake_vllm_server, scripted_upstream):
    chat = run_load_sync(LoadSpec(base_url=fake_vllm_server.url, model="qwen3-8b", backend="openai-chat",
                                  endpoint="/v1/chat/completions", num_prompts=3, input_len=8, output_len=5))
    assert chat["completed"] == 3 and chat["total_output_tokens"] == 15
    emb = run_load_sync(LoadSpec(base_url=scripted_upstream.url, model="stub-model", backend="openai-embeddings",
                                 endpoint="/v1/embeddings", num_prompts=4, input_len=8))
    assert emb["completed"] == 4 and emb["total_input_tokens"] == 32
    assert emb["median_e2el_ms"] >= 40.0 and emb["median_ttft_ms"] == emb["median_e2el_ms"]


def test_failures_are_counted_with_their_reason(fake_vllm_server):
    result = run_load_sync(LoadSpec(base_url=fake_vllm_server.url, model="no-such-model", num_prompts=2,
                                    input_len=4, output_len=2))
    assert result["completed"] == 0 and result["failed"] == 2
    assert result["errors"][0].startswith("HTTP 404")


def test_a_stop_request_cancels_requests_in_flight(scripted_upstream):
    with pytest.raises(Cancelled, match="cancelled while requests were in flight"):
        run_load_sync(LoadSpec(base_url=scripted_upstream.url, model="stub-model", num_prompts=4, input_len=4,
                               output_len=400), should_stop=lambda: True)
