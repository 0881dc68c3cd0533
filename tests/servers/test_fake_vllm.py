"""The vLLM stand-in speaks vLLM's interfaces: flags, endpoints, stream format, metrics, signals."""
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

FAKE_VLLM = str(Path(__file__).resolve().parents[1] / "fakes" / "bin" / "vllm")
REFERENCE_FAMILIES = {
    "vllm:generation_tokens", "vllm:prompt_tokens", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits",
    "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:e2e_request_latency_seconds",
    "vllm:request_success", "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
}


class Fake:
    def __init__(self, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "SPT_NOENV": "1", **(env or {})}
        self.proc = subprocess.Popen([FAKE_VLLM, "serve", "Qwen/Qwen3-8B", "--port", str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("fake vLLM did not become healthy")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=10)


@pytest.fixture
def fake():
    servers = []

    def start(*args, env=None):
        server = Fake(*args, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, family: str, suffix: str = "_total", **labels) -> float:
    for s in fams[family].samples:
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(family)


def test_it_serves_openai_endpoints_and_moves_its_metrics(fake):
    server = fake("--served-model-name", "qwen", "--max-model-len", "8k", "--gpu-memory-utilization", "0.4")
    server.wait_ready()
    models = httpx.get(f"{server.url}/v1/models").json()
    assert models["data"][0]["id"] == "qwen" and models["data"][0]["root"] == "Qwen/Qwen3-8B"
    assert models["data"][0]["max_model_len"] == 8000
    before = families(httpx.get(f"{server.url}/metrics").text)
    assert set(before) >= REFERENCE_FAMILIES

    answer = httpx.post(f"{server.url}/v1/chat/completions", json={
        "model": "qwen", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 5}).json()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 5

    with httpx.stream("POST", f"{server.url}/v1/completions", json={
            "model": "qwen", "prompt": "The capital of France is", "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["object"] == "text_completion" and chunks[0]["id"].startswith("cmpl-")
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3

    after = families(httpx.get(f"{server.url}/metrics").text)
    assert sample(after, "vllm:generation_tokens") - sample(before, "vllm:generation_tokens") == 8
    assert sample(after, "vllm:request_success", finished_reason="length") == 2
    assert sample(after, "vllm:time_to_first_token_seconds", "_count") == 2
    assert sample(after, "http_requests", handler="/v1/completions", method="POST", status="2xx") == 1

    missing = httpx.post(f"{server.url}/v1/completions", json={"model": "nope", "prompt": "x"})
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "The model `nope` does not exist.", "type": "NotFoundError",
                                       "param": "model", "code": 404}
    tokens = httpx.post(f"{server.url}/tokenize", json={"prompt": "Hello, world"}).json()
    assert tokens["count"] == 3
    text = httpx.post(f"{server.url}/detokenize", json={"tokens": tokens["tokens"]}).json()
    assert text == {"prompt": "Hello, world"}


def test_chat_answers_follow_the_requested_json_schema(fake):
    server = fake("--served-model-name", "qwen")
    server.wait_ready()
    schema = {"type": "object", "properties": {"code": {"type": "string", "enum": ["10.02", "20.02"]},
                                               "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                                               "reason": {"type": "string", "maxLength": 20}},
              "required": ["code", "confidence", "reason"], "additionalProperties": False}
    body = {"model": "qwen", "messages": [{"role": "user", "content": "Pick one"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}}}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body).json()
    content = json.loads(answer["choices"][0]["message"]["content"])
    assert content == {"code": "10.02", "confidence": 0.5, "reason": "The stand-in engine"}
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["completion_tokens"] > 5
    cut = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "max_tokens": 3}).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["choices"][0]["message"]["content"] == '{"code'


def test_it_logs_startup_like_vllm_and_stops_on_sigterm(fake):
    server = fake()
    server.wait_ready()
    engine = subprocess.run(["pgrep", "-s", str(server.proc.pid), "-f", "VLLM::EngineCore"], capture_output=True,
                            text=True).stdout.split()
    assert len(engine) == 1
    os.killpg(server.proc.pid, signal.SIGTERM)
    out, err = server.proc.communicate(timeout=10)
    assert server.proc.returncode == 0
    assert "vLLM server version 0.33.0, serving model Qwen/Qwen3-8B" in out
    assert "Model loading took 1.5000 GiB memory" in out
    assert "[shutdown] API server: shutdown triggered" in out
    assert "INFO:     Application startup complete." in err.splitlines()


def test_it_rejects_unknown_flags_like_argparse(fake):
    server = fake("--no-such-flag", "3")
    _out, err = server.proc.communicate(timeout=10)
    assert server.proc.returncode == 2
    assert "vllm: error: unrecognized arguments: --no-such-flag 3" in err
    bad = fake("--dtype", "foo")
    _out, err = bad.proc.communicate(timeout=10)
    assert bad.proc.returncode == 2
    assert "vllm serve: error: argument --dtype: invalid choice: 'foo'" in err


def test_it_fails_with_the_oom_line_when_told(fake):
    server = fake(env={"FAKE_VLLM_FAIL": "oom"})
    _out, err = server.proc.communicate(timeout=10)
    assert server.proc.returncode == 1
    assert "torch.OutOfMemoryError: CUDA out of memory." in err
    assert "RuntimeError: Engine core initialization failed." in err


REAL_026 = Path(__file__).resolve().parents[1] / "fixtures" / "vllm-0.26"


def test_as_026_it_runs_three_processes_and_exposes_the_real_families(fake):
    server = fake(env={"FAKE_VLLM_VERSION": "0.26.0"})
    server.wait_ready()
    assert httpx.get(f"{server.url}/version").json() == {"version": "0.26.0"}
    session = subprocess.run(["pgrep", "-s", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(session) == 3  # API server, resource tracker, EngineCore
    ours = {name for name in families(httpx.get(f"{server.url}/metrics").text) if name.startswith("vllm:")}
    real = {name for name in families((REAL_026 / "metrics1.txt").read_text()) if name.startswith("vllm:")}
    assert ours == real
    os.killpg(server.proc.pid, signal.SIGTERM)
    out, _err = server.proc.communicate(timeout=10)
    assert "Model loading took 1.5 GiB and 0.200000 seconds" in out


def test_it_prints_the_real_026_lines_when_flashinfer_is_missing(fake):
    server = fake(env={"FAKE_VLLM_FAIL": "missing-flashinfer"})
    out, err = server.proc.communicate(timeout=10)
    assert server.proc.returncode == 1
    assert "ERROR" in out and "ModuleNotFoundError: No module named 'flashinfer'" in out
    assert err.rstrip().endswith("RuntimeError: Engine core initialization failed. See root cause above. "
                                 "Failed core proc(s): {}")


def _sleep_state(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "vllm:engine_sleep_state")
    return {s.labels["sleep_state"]: s.value for s in family.samples}


def test_it_sleeps_like_the_real_026_only_with_the_dev_mode(fake):
    plain = fake("--enable-sleep-mode")
    sleepy = fake("--enable-sleep-mode", env={"VLLM_SERVER_DEV_MODE": "1", "FAKE_VLLM_WAKE_DELAY_S": "0.3"})
    plain.wait_ready()
    sleepy.wait_ready()
    assert httpx.post(f"{plain.url}/sleep", params={"level": 1}, timeout=5).status_code == 404
    assert _sleep_state(sleepy.url) == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}
    assert httpx.post(f"{sleepy.url}/sleep", params={"level": 1}, timeout=5).status_code == 200
    assert httpx.get(f"{sleepy.url}/is_sleeping", timeout=5).json() == {"is_sleeping": True}
    assert httpx.get(f"{sleepy.url}/health", timeout=5).status_code == 200  # still healthy while asleep
    assert _sleep_state(sleepy.url)["weights_offloaded"] == 1.0
    with httpx.Client(timeout=10) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, f"{sleepy.url}/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        time.sleep(0.5)
        assert not waiting.done()  # a request sent while asleep waits ...
        began = time.monotonic()
        assert client.post(f"{sleepy.url}/wake_up").status_code == 200
        assert waiting.result().status_code == 200  # ... and completes once woken
        assert time.monotonic() - began >= 0.3
    assert httpx.get(f"{sleepy.url}/is_sleeping", timeout=5).json() == {"is_sleeping": False}
    assert _sleep_state(sleepy.url)["awake"] == 1.0
