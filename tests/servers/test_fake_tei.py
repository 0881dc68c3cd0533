"""The TEI stand-in speaks text-embeddings-router 1.9.3: clap flags with env fallbacks, endpoints, metrics, signals."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engines import failures
from tests.conftest import free_port

FAKE_TEI = str(Path(__file__).resolve().parents[1] / "fakes" / "bin" / "text-embeddings-router")
# A clean environment: the point of several tests is what TEI takes from it.
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FAKE_TEI_STARTUP_DELAY_S": "0.05"}


class Router:
    def __init__(self, *args: str, env: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([FAKE_TEI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**BASE_ENV, **(env or {})}, start_new_session=True)

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError("fake TEI did not become healthy")

    def stop(self) -> tuple[str, str]:
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.communicate(timeout=10)


@pytest.fixture
def router():
    started = []

    def start(*args, **kwargs) -> Router:
        started.append(Router(*args, **kwargs))
        return started[-1]

    yield start
    for item in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(item.proc.pid, signal.SIGKILL)
        item.proc.communicate(timeout=10)


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, family: str, suffix: str = "_total", **labels) -> float:
    for s in fams[family].samples:
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(family)


def test_it_serves_embeddings_and_its_metrics_appear_as_they_are_used(router):
    port = free_port()
    tei = router("--model-id", "BAAI/bge-small-en-v1.5", "--served-model-name", "bge", "--hostname", "127.0.0.1",
                 "--port", str(port), port=port)
    tei.wait_ready()
    assert httpx.get(f"{tei.url}/metrics").text == ""  # nothing is registered before its first use
    info = httpx.get(f"{tei.url}/info").json()
    assert info["served_model_name"] == "bge" and info["model_id"] == "BAAI/bge-small-en-v1.5"
    assert info["model_type"] == {"embedding": {"pooling": "cls"}} and info["version"] == "1.9.3"
    assert info["max_client_batch_size"] == 32 and info["auto_truncate"] is True

    single = httpx.post(f"{tei.url}/embed", json={"inputs": "What is Deep Learning?"})
    assert len(single.json()) == 1 and len(single.json()[0]) == 384
    assert abs(sum(v * v for v in single.json()[0]) - 1) < 1e-6 and single.headers["x-compute-tokens"] == "7"
    assert len(httpx.post(f"{tei.url}/embed", json={"inputs": ["a", "b"]}).json()) == 2
    openai = httpx.post(f"{tei.url}/v1/embeddings", json={"input": "hello world", "model": "bge"}).json()
    assert openai["object"] == "list" and openai["model"] == "bge" and openai["data"][0]["index"] == 0
    assert openai["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    too_many = httpx.post(f"{tei.url}/embed", json={"inputs": ["x"] * 33})
    assert too_many.status_code == 422
    assert too_many.json() == {"error": "batch size 33 > maximum allowed batch size 32", "error_type": "Validation"}
    rerank = httpx.post(f"{tei.url}/rerank", json={"query": "q", "texts": ["t"]})
    assert rerank.status_code == 424
    assert rerank.json() == {"error": "Backend error: model is not a re-ranker model", "error_type": "Backend"}

    fams = families(httpx.get(f"{tei.url}/metrics").text)
    assert value(fams, "te_request_count", method="single") == 2
    assert value(fams, "te_request_count", method="batch") == 2
    assert value(fams, "te_request_success", method="batch") == 1
    assert value(fams, "te_request_failure", err="batch_size") == 1
    assert value(fams, "te_request_failure", err="model_type") == 1
    assert value(fams, "te_embed_count") == 4 and value(fams, "te_queue_size", "") == 0
    assert value(fams, "te_request_input_length", "_count") == 4
    assert value(fams, "te_request_input_length", "_sum") == 7 + 3 + 3 + 4
    assert value(fams, "te_request_duration", "_count") == 3
    bounds = [s.labels["le"] for s in fams["te_request_duration"].samples if s.name.endswith("_bucket")]
    assert len(bounds) == 36 and float(bounds[0]) == pytest.approx(1.5e-05) and bounds[-1] == "+Inf"

    out, _err = tei.stop()
    assert tei.proc.returncode == 0
    lines = out.splitlines()
    assert "Starting model backend" in lines[3] and "Warming up model" in lines[4]
    assert lines[5].endswith(f"Starting HTTP server: 127.0.0.1:{port}") and lines[6].endswith("Ready")
    assert lines[-1].endswith("signal received, starting graceful shutdown")


def test_each_flag_falls_back_to_the_environment_variable_of_its_name(router):
    port = free_port()
    tei = router("--max-client-batch-size", "8", port=port, env={
        "MODEL_ID": "BAAI/bge-reranker-base", "PORT": str(port), "HOSTNAME": "127.0.0.1", "API_KEY": "secret",
        "MAX_CLIENT_BATCH_SIZE": "4", "JSON_OUTPUT": "true"})
    tei.wait_ready()
    assert httpx.get(f"{tei.url}/info").status_code == 401  # API_KEY guards every route but health and metrics
    auth = {"Authorization": "Bearer secret"}
    info = httpx.get(f"{tei.url}/info", headers=auth).json()
    assert info["model_id"] == "BAAI/bge-reranker-base" and "reranker" in info["model_type"]
    assert info["max_client_batch_size"] == 8  # the command line wins over the environment
    ranks = httpx.post(f"{tei.url}/rerank", headers=auth, json={
        "query": "What is Deep Learning?", "texts": ["Cheese is tasty.", "Deep Learning is a kind of learning."],
        "return_text": True}).json()
    assert [r["index"] for r in ranks] == [1, 0] and ranks[0]["text"].startswith("Deep") and ranks[1]["score"] > 0
    out, _err = tei.stop()
    first = json.loads(out.splitlines()[0])
    assert first["level"] == "INFO" and first["target"] == "text_embeddings_router"
    assert first["message"].startswith("Args { model_id: ") and f"port: {port}," in first["message"]


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--model-id", "m", "--no-such-flag"], {}, "error: unexpected argument '--no-such-flag' found"),
    ([], {}, "error: the following required arguments were not provided:\n  --model-id <MODEL_ID>"),
    (["--model-id", "m"], {"PORT": "http"}, "error: invalid value 'http' for '--port <PORT>': invalid digit"),
    (["--model-id", "m", "--dtype", "fp8"], {},
     "error: invalid value 'fp8' for '--dtype <DTYPE>'\n  [possible values: float16, float32]"),
    (["--model-id", "m", "--hf-token", "a"], {"HF_API_TOKEN": "b"},
     "error: the argument '--hf-token <HF_TOKEN>' cannot be used with '--hf-api-token <HF_API_TOKEN>'"),
])
def test_it_refuses_bad_command_lines_like_clap(router, args, env, message):
    tei = router(*args, env=env)
    _out, err = tei.proc.communicate(timeout=10)
    assert tei.proc.returncode == 2
    assert err.startswith(message) and err.endswith("For more information, try '--help'.\n")


def test_a_taken_port_ends_it_with_the_routers_bind_error(router):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        tei = router("--model-id", "m", "--hostname", "127.0.0.1", "--port", str(port), port=port)
        _out, err = tei.proc.communicate(timeout=15)
    assert tei.proc.returncode == 1
    assert err == (f"Error: Could not bind TCP Listener on 127.0.0.1:{port}\n\nCaused by:\n"
                   "    Address already in use (os error 98)\n")
    assert failures.classify(err).code == "port_in_use"
