"""The planner refuses a start on a node without the engine (with the link to fix it) and says "unknown"
where it could not check something, instead of answering a plain ok."""
import pytest
from django.test import Client

from accounts import services as account_services

pytestmark = pytest.mark.django_db

MISSING = {"engines": {"vllm": {"executable": "/opt/vllm/bin/vllm", "found": False, "version": ""}}}


def _api(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name="cli")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def test_the_plan_is_unknown_without_gpu_figures_engine_facts_or_weights(node, make_profile, operator_user):
    make_profile("huge", repo_id="org/huge-74b")
    plan = _api(operator_user).get("/api/servers/plan", {"profile": "huge"}).json()
    assert plan["ok"] and plan["verdict"] == "unknown"
    assert "whether vLLM is installed" in plan["unknown"]
    assert any("weights" in item for item in plan["unknown"])


def test_a_node_without_the_engine_refuses_the_start_with_the_same_words(node, make_profile, operator_user):
    node.host_facts = MISSING
    node.save()
    make_profile("coder")
    api = _api(operator_user)
    plan = api.get("/api/servers/plan", {"profile": "coder"}).json()
    assert plan["verdict"] == "refused" and plan["fix_url"] == f"/admin/nodes/node/{node.pk}/change/"
    words = f"vLLM is not installed on node {node.name}: /opt/vllm/bin/vllm was not found."
    assert plan["errors"][0].startswith(words)
    refused = api.post("/api/servers/", {"profile": "coder"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["code"] == "engine_missing"
    assert refused.json()["detail"].startswith(words)


def test_the_start_button_is_disabled_with_the_reason_and_an_admins_link(node, make_profile, admin_user,
                                                                        operator_user):
    node.host_facts = MISSING
    node.save()
    make_profile("coder")
    client = Client()
    client.force_login(admin_user)
    fragment = client.get("/servers/plan/", {"profile": "coder", "node": node.name},
                          headers={"HX-Request": "true"}).content.decode()
    assert 'id="start-button" hx-swap-oob="true" disabled' in fragment
    assert f'href="/admin/nodes/node/{node.pk}/change/"' in fragment
    client.force_login(operator_user)
    fragment = client.get("/servers/plan/", {"profile": "coder", "node": node.name},
                          headers={"HX-Request": "true"}).content.decode()
    assert "Ask an admin to fix it in the node's settings." in fragment
