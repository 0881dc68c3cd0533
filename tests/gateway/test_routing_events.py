"""The routing table follows the servers' status events: no waiting for its TTL."""
import time

import httpx
import pytest

from tests.conftest import stop_process, subprocess_env
from tests.gateway.conftest import FakeVllm, _daphne

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
TTL_S = 300


@pytest.fixture(scope="module")
def slow_ttl_gateway(portal_processes, tmp_path_factory):
    """A second daphne whose routing table would refresh by its TTL only after 5 minutes, and a second
    engine serving chat-model (the replacement replica)."""
    replica = FakeVllm("chat-model")
    server = _daphne(subprocess_env(PORTAL_USAGE_FLUSH_S="0.1", PORTAL_GATEWAY_ROUTES_TTL_S=str(TTL_S)),
                     tmp_path_factory.mktemp("daphne-slow-ttl"))
    try:
        replica.wait_ready()
        yield server, replica
    finally:
        stop_process(server.proc)
        replica.close()


def _until(check, *, within: float = 10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    return None


def test_a_newly_ready_server_takes_requests_at_once_and_a_stopping_one_none(portal, slow_ttl_gateway):
    from servers import lifecycle
    from servers.models import Server

    gateway, replica = slow_ttl_gateway
    _user, raw = portal.member()
    url, headers = f"{gateway.url}/v1/chat/completions", portal.headers(raw)
    old = portal.servers["chat-model"]
    with portal.db():
        new = Server.objects.create(node=portal.node, served_model_name="chat-model", port=replica.port,
                                    status=Server.Status.STOPPED)
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200  # routed to the old server, cached

    # A rolling replacement: the new replica becomes ready, the old one is stopped (its engine still answers).
    began = time.monotonic()
    with portal.db():
        lifecycle.transition(new.pk, to=Server.Status.STARTING, reason="engine starting")
        lifecycle.transition(new.pk, to=Server.Status.READY, reason="engine ready")
        lifecycle.transition(old.pk, to=Server.Status.STOPPING, reason="replaced")

    def served_by_new():
        assert httpx.post(url, headers=headers, json=CHAT).status_code == 200
        return replica.metric("vllm:request_success") > 0

    assert _until(served_by_new), "the new replica got no request"
    assert time.monotonic() - began < TTL_S / 10
    with portal.db():
        lifecycle.transition(new.pk, to=Server.Status.STOPPING, reason="operator stop")

    def refused():
        response = httpx.post(url, headers=headers, json=CHAT)
        return response if response.status_code == 503 else None

    leaving = _until(refused)
    assert leaving is not None and "is being stopped right now" in leaving.json()["error"]["message"]
