"""The routing table follows the servers' status events: no waiting for its TTL."""
import time

import httpx
import pytest

from tests.conftest import stop_process, subprocess_env
from tests.gateway.conftest import _daphne

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
TTL_S = 300


@pytest.fixture(scope="module")
def slow_ttl_gateway(portal_processes, tmp_path_factory):
    """A second daphne whose routing table would only refresh by its TTL after 5 minutes."""
    server = _daphne(subprocess_env(PORTAL_USAGE_FLUSH_S="0.1", PORTAL_GATEWAY_ROUTES_TTL_S=str(TTL_S)),
                     tmp_path_factory.mktemp("daphne-slow-ttl"))
    yield server
    stop_process(server.proc)


def _until(check, *, within: float = 10.0):
    deadline = time.monotonic() + within
    while True:
        response = check()
        if response is not None or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_a_server_is_routed_to_as_soon_as_it_is_ready_and_left_as_soon_as_it_stops(portal, slow_ttl_gateway):
    from servers import lifecycle
    from servers.models import Server

    _user, raw = portal.member()
    url, headers = f"{slow_ttl_gateway.url}/v1/chat/completions", portal.headers(raw)
    server_id = portal.servers["chat-model"].pk
    with portal.db():
        Server.objects.filter(pk=server_id).update(status=Server.Status.STOPPED)
    stopped = httpx.post(url, headers=headers, json=CHAT)
    assert stopped.status_code == 503 and stopped.json()["error"]["code"] == "model_not_running"

    began = time.monotonic()
    with portal.db():
        lifecycle.transition(server_id, to=Server.Status.STARTING, reason="engine starting")
        lifecycle.transition(server_id, to=Server.Status.READY, reason="engine ready")
    served = _until(lambda: r if (r := httpx.post(url, headers=headers, json=CHAT)).status_code == 200 else None)
    assert served is not None, "the ready server was not routed to"
    assert served.json()["choices"][0]["message"]["content"]
    assert time.monotonic() - began < TTL_S / 10

    with portal.db():
        lifecycle.transition(server_id, to=Server.Status.STOPPING, reason="operator stop")
    leaving = _until(lambda: r if (r := httpx.post(url, headers=headers, json=CHAT)).status_code == 503 else None)
    assert leaving is not None and "is being stopped right now" in leaving.json()["error"]["message"]
