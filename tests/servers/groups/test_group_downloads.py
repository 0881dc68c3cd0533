"""A multi-node profile's weights are downloaded on every node of its group in one request."""
import pytest

from models_registry.models import Download
from tests.servers.groups.conftest import make_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def three(db):
    return make_node("lead"), make_node("follow"), make_node("spare")


def test_one_request_queues_the_weights_on_every_named_node(client, three, group_profile, operator_user):
    profile = group_profile()
    client.force_login(operator_user)
    answer = client.post(f"/api/models/profiles/{profile.pk}/download-nodes", {"nodes": ["lead", "follow"]},
                         content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert sorted(d["node"] for d in answer.json()) == ["follow", "lead"]
    assert set(Download.objects.values_list("repo_id", flat=True)) == {"Qwen/Qwen3-0.6B"}
    everywhere = client.post(f"/api/models/profiles/{profile.pk}/download-nodes", {},
                             content_type="application/json").json()
    assert sorted(d["node"] for d in everywhere) == ["follow", "lead", "spare"]
    assert Download.objects.count() == 3  # the running two are joined, not queued twice


def test_an_unknown_node_queues_nothing_and_members_may_not(client, three, group_profile, operator_user, member_user):
    profile = group_profile()
    client.force_login(operator_user)
    answer = client.post(f"/api/models/profiles/{profile.pk}/download-nodes", {"nodes": ["lead", "ghost"]},
                         content_type="application/json")
    assert answer.status_code == 404 and "No node named 'ghost'" in answer.json()["detail"]
    assert not Download.objects.exists()
    client.force_login(member_user)
    assert client.post(f"/api/models/profiles/{profile.pk}/download-nodes", {},
                       content_type="application/json").status_code == 403
