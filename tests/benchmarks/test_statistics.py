"""The portal's statistics reproduce `vllm bench serve`'s own numbers from its per-request data."""
import json
import math
from pathlib import Path

import pytest

from benchmarks.statistics import RequestOutput, calculate_metrics, median, spread_pct

REFERENCE = Path(__file__).resolve().parent / "reference"


def reference_result() -> dict:
    return json.loads((REFERENCE / "bench_serve_result.json").read_text())


def outputs_from(result: dict) -> list[RequestOutput]:
    return [RequestOutput(success=not err, prompt_len=inp, output_tokens=out, ttft=ttft, itl=itl, latency=lat,
                          start_time=start, queue_time=queue, error=err)
            for inp, out, ttft, itl, lat, start, queue, err in zip(
                result["input_lens"], result["output_lens"], result["ttfts"], result["itls"], result["latencies"],
                result["start_times"], result["queue_times"], result["errors"], strict=True)]


def test_it_reproduces_every_aggregate_of_the_real_tool():
    real = reference_result()
    ours = calculate_metrics(outputs_from(real), duration=real["duration"])
    checked = 0
    for key, value in ours.items():
        if value is None:
            assert real[key] is None, key
            continue
        assert math.isclose(value, real[key], rel_tol=1e-9, abs_tol=1e-9), (key, value, real[key])
        checked += 1
    # Every percentile key of the four metrics, throughputs, counts and both peaks.
    assert checked == 35
    assert {k for k in real if k.endswith("_ms")} == {k for k in ours if k.endswith("_ms")}


def test_tpot_excludes_the_first_token_and_itl_pools_all_gaps():
    outs = [RequestOutput(success=True, output_tokens=3, ttft=0.1, itl=[0.02, 0.04], latency=0.16, start_time=0.0),
            RequestOutput(success=True, output_tokens=1, ttft=0.2, itl=[], latency=0.2, start_time=0.0),
            RequestOutput(success=False, error="HTTP 500")]
    result = calculate_metrics(outs, duration=1.0)
    assert result["completed"] == 2 and result["failed"] == 1
    assert math.isclose(result["mean_tpot_ms"], 30.0)  # (0.16 - 0.1) / (3 - 1); one-token answers have no TPOT
    assert math.isclose(result["median_itl_ms"], 30.0)
    assert math.isclose(result["median_ttft_ms"], 150.0)


@pytest.mark.parametrize(("values", "expected"), [([100.0, 101.0, 99.0], 2.0), ([5.0], 0.0), ([], None)])
def test_spread_is_max_minus_min_over_median(values, expected):
    assert spread_pct(values) == expected


def test_median_of_an_even_count_is_the_mean_of_the_middle_pair():
    assert median([1.0, 4.0, 2.0, 3.0]) == 2.5
