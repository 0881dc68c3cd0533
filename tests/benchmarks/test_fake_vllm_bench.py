"""The `vllm bench serve` stand-in writes the real tool's keys and table, from real requests."""
import json
import os
import subprocess
from pathlib import Path

from tests.benchmarks.conftest import FAKE_VLLM
from tests.benchmarks.test_statistics import REFERENCE

REAL_026 = Path(__file__).resolve().parents[1] / "fixtures" / "vllm-0.26"


def bench(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FAKE_VLLM, "bench", "serve", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def table_labels(stdout: str) -> list[str]:
    lines = stdout[stdout.index("Serving Benchmark Result"):].splitlines()
    return [line.split(":")[0] for line in lines if ":" in line]


def test_detailed_result_has_exactly_the_real_keys_and_table(fake_vllm_server, tmp_path):
    done = bench("--backend", "openai", "--base-url", fake_vllm_server.url, "--endpoint", "/v1/completions",
                 "--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen3-8b", "--tokenizer", "/models/Qwen3-8B",
                 "--dataset-name", "random", "--random-input-len", "256", "--random-output-len", "32",
                 "--num-prompts", "10", "--request-rate", "40", "--seed", "0", "--ignore-eos",
                 "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99", "--save-result",
                 "--save-detailed", "--result-dir", str(tmp_path), "--result-filename", "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours = json.loads((tmp_path / "r.json").read_text())
    real = json.loads((REFERENCE / "bench_serve_result.json").read_text())
    assert list(ours) == list(real)
    assert ours["completed"] == 10 and ours["failed"] == 0
    assert ours["total_input_tokens"] == 2560 and ours["total_output_tokens"] == 320
    assert ours["output_throughput"] == ours["total_output_tokens"] / ours["duration"]
    assert len(ours["itls"]) == 10 and all(len(gaps) >= 31 for gaps in ours["itls"])
    real_stdout = (REFERENCE / "bench_serve_stdout.txt").read_text()
    assert table_labels(done.stdout) == table_labels(real_stdout)
    assert "WARNING: vllm bench serve no longer sets temperature==0" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("Successful requests:"))
    assert len(row) == 51  # "{:<40} {:<10}": trailing spaces as the real tool prints


def test_plain_result_keeps_the_real_subset(fake_vllm_server, tmp_path):
    done = bench("--base-url", fake_vllm_server.url, "--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen3-8b",
                 "--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "6", "--request-rate", "50",
                 "--max-concurrency", "4", "--save-result", "--temperature", "0", "--num-warmups", "2",
                 "--result-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = list(tmp_path.glob("openai-50.0qps-concurrency4-Qwen3-8B-*.json"))
    assert len(files) == 1, list(tmp_path.iterdir())
    real = json.loads((REFERENCE / "bench_serve_result_not_detailed.json").read_text())
    assert list(json.loads(files[0].read_text())) == list(real)
    assert "temperature==0" not in done.stdout
    assert table_labels(done.stdout) == table_labels((REFERENCE / "bench_serve_stdout_not_detailed.txt").read_text())
    assert "Warming up with 2 benchmark requests" in done.stdout


def test_unknown_flags_exit_2_like_argparse(tmp_path):
    done = bench("--no-such-flag", "3", cwd=tmp_path)
    assert done.returncode == 2
    assert "vllm bench serve: error: unrecognized arguments: --no-such-flag 3" in done.stderr


def test_as_026_the_plain_result_has_the_real_026_keys(fake_vllm_server, tmp_path):
    # The same command line as the real run of vLLM 0.26.0's bench on an H100: no latencies, no queue_times.
    done = bench("--backend", "openai-chat", "--base-url", fake_vllm_server.url, "--endpoint", "/v1/chat/completions",
                 "--model", "qwen3-8b", "--tokenizer", "/models/tiny", "--dataset-name", "random",
                 "--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "5", "--temperature", "0",
                 "--save-result", "--result-filename", str(tmp_path / "r.json"), cwd=tmp_path,
                 env={"FAKE_VLLM_VERSION": "0.26.0"})
    assert done.returncode == 0, done.stderr
    real = json.loads((REAL_026 / "bench.json").read_text())
    assert list(json.loads((tmp_path / "r.json").read_text())) == list(real)
