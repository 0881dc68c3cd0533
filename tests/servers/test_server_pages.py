"""The Servers pages: budget per node, the planner's preview, start errors in words, detail and log."""
import pytest
from django.test import Client

from servers.models import Server

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_each_nodes_budget_and_a_missing_engine(node, operator_user):
    node.host_facts = {"engines": {"vllm": {"executable": "/opt/vllm/bin/vllm", "found": False, "version": ""}}}
    node.save()
    Server.objects.create(node=node, served_model_name="coder", port=8101, status="ready", gpu_memory_utilization=0.7)
    page = _login(operator_user).get("/servers/").content.decode()
    assert "<strong data-budget-used>0.70</strong> of 0.85 used by 1 server" in page
    assert "vLLM is not installed on this node: /opt/vllm/bin/vllm was not found." in page


def test_the_plan_preview_states_the_numbers(node, make_profile, operator_user):
    make_profile("big", gpu_memory_utilization=0.9)
    fragment = _login(operator_user).get("/servers/plan/", {"profile": "big", "node": node.name},
                                         headers={"HX-Request": "true"}).content.decode()
    assert 'data-plan-ok="no"' in fragment
    assert "would use 0.90 of its GPU memory budget 0.85" in fragment


def test_a_refused_start_shows_why_and_members_cannot_start(node, make_profile, operator_user, member_user):
    make_profile("typo", extra_flags="--max-num-seqz 4")
    page = _login(operator_user).post("/servers/start/", {"profile": "typo", "node": node.name,
                                                          "restart_policy": "never"}).content.decode()
    assert "vLLM 0.33.0 does not know --max-num-seqz" in page
    assert _login(member_user).post("/servers/start/", {"profile": "typo", "node": node.name}).status_code == 403


def test_the_detail_page_shows_the_failure_and_log(node, operator_user, member_user):
    server = Server.objects.create(node=node, served_model_name="coder", port=8101, status="failed",
                                   failure_code="oom", status_reason="CUDA out of memory while loading the model",
                                   last_log_lines="torch.OutOfMemoryError: CUDA out of memory.")
    page = _login(operator_user).get(f"/servers/{server.pk}/").content.decode()
    assert "CUDA out of memory while loading the model" in page and "torch.OutOfMemoryError" in page
    assert 'id="log"' in page
    member_page = _login(member_user).get(f"/servers/{server.pk}/").content.decode()
    assert 'id="log"' not in member_page
    assert _login(member_user).get("/servers/999/").status_code == 404
