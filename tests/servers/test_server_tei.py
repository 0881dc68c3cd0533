"""A TEI profile through the supervisor: start, ready, scraped, stopped; no stray environment variable steers it."""
import time

import httpx
import pytest
from django.core.cache import cache

from servers import logs, services
from servers.metrics import services as metric_services
from tests.conftest import free_port
from tests.servers.conftest import FAKE_TEI, engine_pids, wait_status

# text-embeddings-router reads every flag it is not given from the environment variable of the same name.
STRAY = {"HOSTNAME": "gpu-box-1", "MODEL_ID": "stray/model", "SERVED_MODEL_NAME": "stray", "API_KEY": "stray-key",
         "MAX_CLIENT_BATCH_SIZE": "1", "JSON_OUTPUT": "true", "AIP_HTTP_PORT": "1"}


def proc_environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return dict(item.decode().split("=", 1) for item in fh.read().split(b"\0") if b"=" in item)


def test_a_tei_profile_starts_is_scraped_and_stops_whatever_the_environment_says(
        celery_worker, node, make_profile, operator_user, monkeypatch, settings):
    stray_port = free_port()
    # Containers set PORT and shells set HOSTNAME: around the worker, and pasted into the node's extra env.
    for name, value in {"PORT": str(stray_port), **STRAY}.items():
        monkeypatch.setenv(name, value)
    node.extra_env = {**node.extra_env, "PORT": str(stray_port), "MAX_CLIENT_BATCH_SIZE": "1"}
    node.save()
    profile = make_profile("bge-small", engine="tei", task="embed", repo_id="BAAI/bge-small-en-v1.5",
                           extra_flags="--max-batch-tokens 8192", extra_env={"FAKE_TEI_STARTUP_DELAY_S": "0.1"})

    server = wait_status(services.server_start(user=operator_user, profile=profile, node=node), "ready")
    assert server.engine == "tei" and server.engine_version == "1.9.3"
    assert server.argv == [FAKE_TEI, "--model-id", "BAAI/bge-small-en-v1.5", "--served-model-name", "bge-small",
                           "--hostname", "127.0.0.1", "--port", str(server.port), "--huggingface-hub-cache",
                           str(settings.PORTAL_WEIGHTS_DIR / "hub"), "--max-batch-tokens", "8192"]
    env = proc_environ(server.pid)
    assert not {"PORT", *STRAY} & set(env), "a same-named variable reached the router"
    assert env["SPARKPORTAL_SERVER_ID"] == str(server.pk) and env["HF_HUB_OFFLINE"] == "1"
    info = httpx.get(f"{server.base_url}/info", timeout=5).json()  # no API_KEY leaked in: no 401
    assert info["model_id"] == "BAAI/bge-small-en-v1.5" and info["served_model_name"] == "bge-small"
    assert info["max_client_batch_size"] == 32 and info["max_batch_tokens"] == 8192
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{stray_port}/health", timeout=1)
    log_head = logs.log_path(server.pk).read_text().splitlines()[1]
    assert "Args { model_id: " in log_head and not log_head.startswith("{")  # text logs: JSON_OUTPUT stayed out

    settings.PORTAL_METRICS_SCRAPE_SECONDS = 1.0
    cache.clear()
    # Only this server's sample: an engine of another run on this host may be found as an external server.
    [first] = _own(metric_services.server_metrics_scrape_node(node_name=node.name), server)  # fresh: empty /metrics
    assert first.waiting == 0 and first.requests_per_s is None
    tokens = 0
    for text in ("What is Deep Learning?", "Deep Learning is not", "cheese"):
        answer = httpx.post(f"{server.base_url}/embed", json={"inputs": text}, timeout=5)
        tokens += int(answer.headers["x-compute-tokens"])
    time.sleep(1.05)  # past the node's scrape claim
    [second] = _own(metric_services.server_metrics_scrape_node(node_name=node.name), server)
    assert second.requests_per_s == pytest.approx(3 / second.interval_s)
    assert second.prompt_tps == pytest.approx(tokens / second.interval_s)
    assert second.e2e_mean_s is not None and second.e2e_p95_s is not None and second.waiting == 0

    services.server_stop(user=operator_user, server=server)
    server = wait_status(server, "stopped")
    assert server.status_reason.startswith("SIGTERM: exited")
    assert engine_pids(server) == []


def _own(samples: list, server) -> list:
    return [sample for sample in samples if sample.server_id == server.pk]
