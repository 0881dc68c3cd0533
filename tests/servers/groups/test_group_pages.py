"""The Servers page starts a multi-node profile; the leader's page shows the group, each rank's preflight and the
log of every rank, each read on its own node."""
import pytest

from servers.models import Server, ServerGroup
from tests.servers.groups.conftest import group_state, marked_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_starts_a_group_and_shows_every_ranks_log(client, two_nodes, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    answer = client.post("/servers/start/", {"profile": "big", "node": "lead", "nodes": "lead, follow",
                                             "restart_policy": "never"})
    group = ServerGroup.objects.get()
    leader = Server.objects.get(group=group, rank=0)
    assert answer.status_code == 302 and answer.url == f"/servers/{leader.pk}/"
    wait_for(lambda: group_state(group)[0] == "ready", 90, "the group to be ready")
    page = client.get(f"/servers/{leader.pk}/").content.decode()
    assert "Across 2 nodes" in page and f"master 127.0.0.2:{group.master_port}" in page
    assert 'data-rank-log="1"' in page and "Running in headless mode, node rank 1" in page  # read on node follow
    assert "reaches 127.0.0.2" in page and "NCCL_NVLS_ENABLE=0" in page
    client.post(f"/servers/{leader.pk}/stop/")
    wait_for(lambda: group_state(group)[0] == "stopped", 60, "the group to stop")
    page = client.get(f"/servers/{leader.pk}/").content.decode()
    assert "Start the group again" in page
    assert marked_pids() == []


def test_the_page_names_an_unknown_node_and_starts_nothing(client, two_nodes, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    answer = client.post("/servers/start/", {"profile": "big", "node": "lead", "nodes": "lead,ghost"})
    assert answer.status_code == 200 and "No node named ghost (nodes: follow, lead)" in answer.content.decode()
    assert not ServerGroup.objects.exists()


def test_a_member_cannot_start_a_group_from_the_page(client, two_nodes, group_profile, member_user):
    group_profile()
    client.force_login(member_user)
    answer = client.post("/servers/start/", {"profile": "big", "node": "lead", "nodes": "lead,follow"})
    assert answer.status_code == 403 and not ServerGroup.objects.exists()
