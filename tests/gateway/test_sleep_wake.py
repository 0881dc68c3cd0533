"""A request for a sleeping model wakes its server once, however many first requests arrive together; vLLM's
development endpoints (/sleep, /wake_up, ...) are never reachable through the gateway."""
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from accounts.models import AuditEvent
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import services as server_services
from servers.models import Server, ServerEvent
from sparkportal.celery import node_queue
from tests.conftest import free_port
from tests.gateway.conftest import concurrent_streams

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def _wait(server: Server, done, timeout: float = 30.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if done(server):
            return server
        time.sleep(0.05)
    raise AssertionError(f"server #{server.pk} is {server.status} ({server.status_reason})")


def _engine_sleeping(server: Server) -> bool:
    return httpx.get(f"{server.base_url}/is_sleeping", timeout=5).json()["is_sleeping"]


@pytest.fixture
def sleeping_server(portal, celery_worker, operator_user, tmp_path):
    """A sleep-mode server started by an operator, then put to sleep (level 1) and confirmed asleep."""
    settings.PORTAL_LOG_DIR = tmp_path
    node, _ = Node.objects.update_or_create(name=settings.NODE_NAME, defaults={
        "queue": node_queue(settings.NODE_NAME), "vllm_executable": str(FAKES / "bin" / "vllm"),
        "memory_budget": 0.85, "stop_timeout_s": 5, "extra_env": {"PYTHONPATH": str(FAKES / "site")}})
    profile = ModelProfile.objects.create(
        name="dozy", repo_id="Qwen/Qwen3-0.6B", served_model_name="dozy-model", gpu_memory_utilization=0.3,
        max_model_len=4096, enable_sleep_mode=True,
        extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_WAKE_DELAY_S": "1.5"})
    server = server_services.server_start(user=operator_user, profile=profile, node=node, port=free_port())
    _wait(server, lambda s: s.status == "ready")
    server_services.server_sleep(user=operator_user, server=server, level=1)
    server = _wait(server, lambda s: s.status == "sleeping" and s.slept_at is not None)
    yield server
    server.refresh_from_db()
    if server.is_live and server.status != "stopping":
        server_services.server_stop(user=operator_user, server=server)
    _wait(server, lambda s: s.status == "stopped")


def test_ten_concurrent_first_requests_wake_the_server_once_and_all_get_answers(portal, sleeping_server):
    _user, raw = portal.member()
    listed = httpx.get(f"{portal.url}/v1/models", headers=portal.headers(raw), timeout=10).json()
    assert "dozy-model" in [m["id"] for m in listed["data"]]  # a sleeping model is offered
    results = concurrent_streams(portal.url, raw, "dozy-model", 10)
    assert all(status == 200 for status, _ in results)
    for _status, body in results:
        assert ": waking dozy-model" in body  # keep-alive comments while it woke
        assert '"content"' in body and body.rstrip().endswith("data: [DONE]")
    wakes = ServerEvent.objects.filter(server=sleeping_server, old="sleeping", new="waking").count()
    assert wakes == 1
    assert AuditEvent.objects.filter(action="gateway.server.woken_on_demand").count() == 1
    server = _wait(sleeping_server, lambda s: s.status == "ready")
    assert not _engine_sleeping(server)


DEV_PATHS = [("POST", "/sleep?level=1"), ("POST", "/v1/sleep?level=1"), ("POST", "/v1/../sleep?level=1"),
             ("POST", "/wake_up"), ("POST", "/v1/wake_up"), ("GET", "/is_sleeping"), ("GET", "/v1/is_sleeping"),
             ("POST", "/collective_rpc"), ("POST", "/reset_prefix_cache")]


def test_the_dev_endpoints_are_not_reachable_through_the_gateway(portal, sleeping_server):
    server_services.server_wake(user=sleeping_server.started_by, server=sleeping_server)
    server = _wait(sleeping_server, lambda s: s.status == "ready")
    for key in (portal.member()[1], portal.member(role="admin")[1]):
        for method, path in DEV_PATHS:
            answer = httpx.request(method, f"{portal.url}{path}", headers=portal.headers(key),
                                   json={"model": "dozy-model"}, timeout=10)
            assert answer.status_code in (404, 405), (path, answer.status_code, answer.text[:200])
    assert not _engine_sleeping(server)
    log = Path(settings.PORTAL_LOG_DIR, f"server-{server.pk}.log").read_text()
    # The portal's own sleep, from the node's worker, and none from the requests above.
    assert log.count("POST /sleep HTTP/1.1") == 1 and "POST /collective_rpc" not in log
