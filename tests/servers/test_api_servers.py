"""REST API of servers: start, status, stop, plan, logs; errors say what to fix."""
import pytest
from django.test import Client

from accounts import services as account_services
from tests.servers.conftest import wait_status


def _client(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name=f"cli-{user.api_keys.count()}")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def test_an_operator_starts_follows_and_stops_a_server(celery_worker, node, make_profile, operator_user):
    make_profile("coder")
    api = _client(operator_user)
    plan = api.get("/api/servers/plan", {"profile": "coder"}).json()
    assert plan["ok"] and plan["after"] == pytest.approx(0.3)
    started = api.post("/api/servers/", {"profile": "coder", "port": None}, content_type="application/json")
    assert started.status_code == 201, started.content
    server_id = started.json()["id"]
    assert started.json()["status"] == "queued" and started.json()["node"] == node.name
    from servers.models import Server

    wait_status(Server.objects.get(pk=server_id), "ready")
    detail = api.get(f"/api/servers/{server_id}").json()
    assert detail["status"] == "ready" and detail["engine_version"] == "0.33.0"
    assert [s["id"] for s in api.get("/api/servers/", {"status": "ready"}).json()["items"]] == [server_id]
    nodes = api.get("/api/servers/nodes").json()
    assert nodes[0]["used"] == pytest.approx(0.3) and server_id in nodes[0]["servers"]
    logs = api.get(f"/api/servers/{server_id}/logs", {"lines": 50}).json()["lines"]
    assert any("Application startup complete." in line for line in logs)
    hits = api.get(f"/api/servers/{server_id}/logs", {"q": "model loading took"}).json()["lines"]
    assert len(hits) == 1 and "Model loading took 1.5000 GiB memory" in hits[0]
    stopped = api.post(f"/api/servers/{server_id}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopping"
    wait_status(Server.objects.get(pk=server_id), "stopped")
    again = api.post(f"/api/servers/{server_id}/stop")
    assert again.status_code == 409 and again.json() == {
        "detail": f"Server #{server_id} is stopped: there is nothing to stop.", "code": "invalid_transition"}
    history = [(e["old"], e["new"]) for e in api.get(f"/api/servers/{server_id}/events").json()]
    assert history[0] == ("stopping", "stopped")


def test_bad_starts_are_refused_with_a_reason(node, make_profile, operator_user, member_user):
    make_profile("coder", gpu_memory_utilization=0.9)
    api = _client(operator_user)
    unknown = api.post("/api/servers/", {"profile": "nope"}, content_type="application/json")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_profile"
    over = api.post("/api/servers/", {"profile": "coder"}, content_type="application/json")
    assert over.status_code == 400 and over.json()["code"] == "over_budget"
    assert over.json()["detail"].startswith(f"Node {node.name} would use 0.90 of its GPU memory budget 0.85")
    forbidden = _client(member_user).post("/api/servers/", {"profile": "coder"}, content_type="application/json")
    assert forbidden.status_code == 403 and "operators" in forbidden.json()["detail"]
    assert _client(member_user).get("/api/servers/1/logs").status_code == 403
