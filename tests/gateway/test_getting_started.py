"""The dashboard's getting-started checklist reads the real state and offers each step's next action."""
import pytest
from django.test import Client

from accounts import services as account_services
from models_registry.models import ModelProfile, NodeWeights
from nodes.models import Node
from servers.models import Server

pytestmark = pytest.mark.django_db


def _fragment(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get("/chat/getting-started/", headers={"HX-Request": "true"}).content.decode()


def test_a_fresh_portal_starts_at_the_first_step(operator_user):
    html = _fragment(operator_user)
    assert 'data-next="node"' in html and "No node has reported yet" in html
    assert 'action="/accounts/keys/"' in html and 'value="my-first-key"' in html


def test_each_step_follows_the_state_until_the_checklist_disappears(operator_user, member_user):
    node = Node.objects.create(name="spark1", queue="node.spark1", host_facts={
        "engines": {"vllm": {"executable": "vllm", "found": True, "version": "0.33.0"}}})
    profile = ModelProfile.objects.create(name="coder", repo_id="Qwen/Qwen3-0.6B")
    html = _fragment(operator_user)
    assert 'data-next="weights"' in html and f'action="/models/{profile.pk}/download/"' in html
    assert "(ask an operator: download qwen/qwen3-0.6b)" in _fragment(member_user)
    NodeWeights.objects.create(node=node, repos=[{"repo_id": "Qwen/Qwen3-0.6B"}])
    html = _fragment(operator_user)
    assert 'data-next="server"' in html and 'action="/servers/start/"' in html and 'value="coder"' in html
    Server.objects.create(node=node, profile=profile, served_model_name="coder", port=8101, status="ready")
    assert 'data-next="key"' in _fragment(operator_user)
    account_services.api_key_create(owner=operator_user, name="ide")
    html = _fragment(operator_user)
    assert 'data-next="request"' in html and 'href="/chat/"' in html
    from django.utils import timezone

    from gateway.models import UsageRecord

    UsageRecord.objects.create(user=operator_user, username=operator_user.username, model="coder",
                               endpoint="chat", status=200, created_at=timezone.now())
    assert "Getting started" not in _fragment(operator_user)
