"""A model across two nodes: each rank through its own node's worker, one lifecycle for the group."""
import time

import pytest

from servers.groups import services as groups
from servers.models import Server, ServerGroup
from servers.tasks import server_reconcile_task
from sparkportal.celery import enqueue_on_node
from tests.servers.groups.conftest import (
    chat_through_gateway,
    group_state,
    kill_rank,
    marked_pids,
    stop_whole,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)
G = ServerGroup.Status


def test_a_two_node_group_starts_serves_through_the_gateway_and_stops_clean(two_nodes, group_profile, operator_user,
                                                                            asgi_server):
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    assert (group.master_addr, group.status) == ("127.0.0.2", G.STARTING)
    wait_for(lambda: group_state(group) == (G.READY, ["ready", "ready"]), 90, "the group to be ready")
    leader, follower = Server.objects.filter(group=group).order_by("rank")
    assert (leader.node.name, leader.host, follower.node.name) == ("lead", "127.0.0.2", "follow")
    assert "--headless" in follower.argv and "--headless" not in leader.argv
    assert follower.argv[follower.argv.index("--master-addr") + 1] == "127.0.0.2"
    assert follower.argv[follower.argv.index("--node-rank") + 1] == "1"
    assert group.preflight["1"]["reaches"] is True and group.preflight["1"]["nccl"]["NCCL_NVLS_ENABLE"] == "0"
    assert group.preflight["1"]["interface_found"] is True

    assert chat_through_gateway(asgi_server.url, operator_user, "big")["model"] == "big"
    stop_whole(group, operator_user)


def test_killing_a_follower_fails_the_group_and_stops_the_leader(two_nodes, group_profile, operator_user):
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the group to be ready")
    follower = Server.objects.get(group=group, rank=1)
    kill_rank(follower, two_nodes.follow)
    # Every rank ends down: the other one stopped by the group, or failed itself when it noticed first.
    wait_for(lambda: group_state(group)[0] == G.FAILED and all(s in ("stopped", "failed")
                                                                for s in group_state(group)[1]), 60,
             "the group to fail with every rank down")
    group.refresh_from_db()
    # The follower's node finds its rank gone, or the leader notices first that its follower stopped beating.
    assert group.status_reason.startswith(("rank 1 on node follow failed", "rank 0 on node lead failed"))
    wait_for(lambda: marked_pids() == [], 20, "no engine left")


def test_under_on_failure_a_lost_follower_restarts_the_whole_group(two_nodes, group_profile, operator_user):
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow],
                               restart_policy="on-failure")
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the group to be ready")
    first = {s.rank: s.pid for s in Server.objects.filter(group=group)}
    kill_rank(Server.objects.get(group=group, rank=1), two_nodes.follow)
    wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")

    def restarted():
        enqueue_on_node(server_reconcile_task, two_nodes.lead, "lead")  # the leader's node restarts its groups
        return group_state(group) == (G.READY, ["ready", "ready"])

    wait_for(restarted, 120, "the group to be restarted")
    group.refresh_from_db()
    assert group.restart_attempts == 1
    again = {s.rank: s.pid for s in Server.objects.filter(group=group)}
    assert again[0] != first[0] and again[1] != first[1]  # both ranks were launched again, never one alone
    groups.group_stop(user=operator_user, group=group)
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")
    assert marked_pids() == []


def test_a_worker_restart_finds_its_rank_again(two_nodes, group_profile, operator_user):
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the group to be ready")
    follower = Server.objects.get(group=group, rank=1)
    two_nodes.restart("follow")  # its reconcile at start finds the rank's process running
    enqueue_on_node(server_reconcile_task, two_nodes.follow, "follow")
    enqueue_on_node(server_reconcile_task, two_nodes.lead, "lead")
    time.sleep(3)
    assert group_state(group) == (G.READY, ["ready", "ready"])
    assert Server.objects.get(pk=follower.pk).pid == follower.pid
    groups.group_stop(user=operator_user, group=group)  # the restarted worker still reaches its rank
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")
    assert marked_pids() == []
