"""An engine the portal did not start is never routed, even under a model name the portal serves:
a local user's `vllm serve --served-model-name <that name>` must not receive other users' prompts."""
import time

import httpx
import pytest

from servers.models import Server
from tests.gateway.conftest import FakeVllm

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture
def intruder(portal):
    fake = FakeVllm("stopped-model")  # the name of a portal model whose own server is stopped
    try:
        fake.wait_ready()
        with portal.db():
            server = Server.objects.create(node=portal.node, served_model_name="stopped-model", port=fake.port,
                                           status=Server.Status.EXTERNAL, pid=fake.proc.pid)
        time.sleep(0.6)  # the routing table's lifetime in these tests
        yield fake, server
    finally:
        fake.close()


def _served(fake: FakeVllm) -> float:
    return sum(fake.metric("vllm:request_success", finished_reason=r) for r in ("stop", "length", "abort"))


def test_an_external_engine_under_a_portal_model_name_receives_nothing(portal, intruder):
    fake, _server = intruder
    _user, raw = portal.member()
    payload = {"model": "stopped-model", "messages": [{"role": "user", "content": "my secret"}], "max_tokens": 2}
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload)
    assert response.status_code == 503, response.text
    assert _served(fake) == 0
    listed = httpx.get(f"{portal.url}/v1/models", headers=portal.headers(raw)).json()["data"]
    assert "stopped-model" not in [m["id"] for m in listed]


def test_an_external_engine_under_a_new_name_is_not_a_model(portal, intruder):
    fake, server = intruder
    with portal.db():
        Server.objects.filter(pk=server.pk).update(served_model_name="intruder-model")
    time.sleep(0.6)
    _user, raw = portal.member()
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={"model": "intruder-model", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert _served(fake) == 0


def test_once_an_operator_adopts_it_the_gateway_routes_to_it(portal, intruder, operator_user, settings):
    from nodes.models import Node
    from servers import services

    fake, server = intruder
    with portal.db():
        # Found on the gateway's own host, where 127.0.0.1 is the engine's address.
        local = Node.objects.create(name=settings.NODE_NAME, queue=f"node.{settings.NODE_NAME}")
        Server.objects.filter(pk=server.pk).update(node=local)
        services.server_adopt(user=operator_user, server=Server.objects.get(pk=server.pk))
    time.sleep(0.6)
    _user, raw = portal.member()
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={"model": "stopped-model", "messages": [{"role": "user", "content": "hi"}],
                                "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert _served(fake) == 1
