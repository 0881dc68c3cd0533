"""Load on demand starts a stopped server once for many first requests; idle unload stops it, but
never while a stream is open."""
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

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


def _wait_status(server: Server, *statuses: str, timeout: float = 30.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if server.status in statuses:
            return server
        time.sleep(0.05)
    raise AssertionError(f"server #{server.pk} stayed {server.status} ({server.status_reason}), wanted {statuses}")


@pytest.fixture
def on_demand_server(portal, celery_worker, operator_user, tmp_path):
    """A server started once by an operator, stopped, then marked load on demand and unload after 1 idle min."""
    settings.PORTAL_LOG_DIR = tmp_path
    node, _ = Node.objects.update_or_create(name=settings.NODE_NAME, defaults={
        "queue": node_queue(settings.NODE_NAME), "vllm_executable": str(FAKES / "bin" / "vllm"),
        "memory_budget": 0.85, "stop_timeout_s": 5, "extra_env": {"PYTHONPATH": str(FAKES / "site")}})
    profile = ModelProfile.objects.create(
        name="lazy", repo_id="Qwen/Qwen3-0.6B", served_model_name="lazy-model", gpu_memory_utilization=0.3,
        max_model_len=4096, extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "1.5", "FAKE_VLLM_TOKEN_DELAY_S": "0.05",
                                       "FAKE_VLLM_OUTPUT_TOKENS": "40"})
    # A random free port: the engine port range is shared with other portals' tests on this machine.
    server = server_services.server_start(user=operator_user, profile=profile, node=node, port=free_port())
    _wait_status(server, "ready")
    server_services.server_stop(user=operator_user, server=server)
    server = _wait_status(server, "stopped")
    response = httpx.put(f"{portal.url}/api/gateway/servers/{server.pk}/on-demand",
                         headers=portal.headers(portal.member(role="operator")[1]),
                         json={"load_on_demand": True, "unload_idle_minutes": 1})
    assert response.status_code == 200 and response.json()["load_on_demand"] is True
    yield server
    server.refresh_from_db()
    if server.status in ("ready", "starting", "queued"):
        server_services.server_stop(user=operator_user, server=server)
        _wait_status(server, "stopped")


def test_ten_concurrent_first_requests_start_the_server_once_and_all_get_answers(portal, on_demand_server):
    _user, raw = portal.member()
    results = concurrent_streams(portal.url, raw, "lazy-model", 10)
    assert all(status == 200 for status, _ in results)
    for _status, body in results:
        assert ": loading lazy-model" in body  # keep-alive comments while it loaded
        assert '"content"' in body and body.rstrip().endswith("data: [DONE]")
    starts = ServerEvent.objects.filter(server=on_demand_server, old="stopped", new="queued").count()
    assert starts == 2  # the operator's first start, then exactly one on demand
    assert AuditEvent.objects.filter(action="gateway.server.loaded_on_demand").count() == 1
    assert _wait_status(on_demand_server, "ready").status == "ready"


def test_idle_unload_never_stops_a_server_with_an_open_stream(portal, on_demand_server):
    _user, raw = portal.member()
    assert all(status == 200 for status, _ in concurrent_streams(portal.url, raw, "lazy-model", 1))
    server = _wait_status(on_demand_server, "ready")
    later = timezone.now() + timedelta(minutes=5)
    payload = {"model": "lazy-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                      timeout=30) as response:
        lines = response.iter_lines()
        while '"content"' not in next(lines):
            pass
        assert server_services.servers_idle_stop(now=later) == []  # a stream is open: it stays
        assert Server.objects.get(pk=server.pk).status == "ready"
        rest = list(lines)
    assert [line for line in rest if line][-1] == "data: [DONE]"
    time.sleep(0.3)  # the request's end reaches Redis before its response's last byte; the ledger lags
    assert server_services.servers_idle_stop(now=later) == [server.pk]
    server = _wait_status(server, "stopped")
    assert "idle for 1 min" in ServerEvent.objects.filter(server=server, new="stopping").latest("at", "id").reason
    assert AuditEvent.objects.filter(action="gateway.server.unloaded_idle", target_id=str(server.pk)).exists()


def test_a_user_at_their_concurrency_while_the_model_loads_waits_in_the_queue_instead_of_a_429(
        portal, on_demand_server):
    _user, raw = portal.member(concurrent_requests=1)
    results = concurrent_streams(portal.url, raw, "lazy-model", 3)
    # All three wait for the load, then take the user's one slot in turn: none is refused.
    assert [status for status, _ in results] == [200] * 3
    for _status, body in results:
        assert "data: [DONE]" in body and '"error"' not in body, body
