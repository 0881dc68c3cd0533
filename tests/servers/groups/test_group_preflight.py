"""The preflight of a multi-node start: a follower's node reports its network and reaches the leader, or the
group fails at once with an error naming the node and the address."""
import time

import pytest

from servers.groups import services as groups
from servers.models import Server, ServerGroup
from tests.servers.groups.conftest import PREFLIGHT_S, group_state, marked_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
G = ServerGroup.Status


def test_a_follower_with_a_wrong_interface_fails_the_preflight_with_its_message(two_nodes, group_profile,
                                                                                operator_user):
    two_nodes.follow.network_interface = "nosuch0"
    two_nodes.follow.save()
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")
    wait_for(lambda: all(s in ("stopped", "failed") for s in group_state(group)[1]), 30, "every rank down")
    group.refresh_from_db()
    assert group.failure_code == "preflight"
    assert "Node follow: network interface nosuch0 does not exist on this host (it has " in group.status_reason
    assert "lo" in group.preflight["1"]["interfaces"] and group.preflight["1"]["ok"] is False
    follower = Server.objects.get(group=group, rank=1)
    assert follower.status == "failed" and follower.pid is None  # never launched
    wait_for(lambda: marked_pids() == [], 20, "no engine left")


def test_a_follower_that_cannot_reach_its_leader_fails_naming_both_not_a_hang(two_nodes, group_profile,
                                                                              operator_user):
    two_nodes.stop("lead")  # the leader's host is down: nothing ever listens on its rendezvous port
    began = time.monotonic()
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")
    waited = time.monotonic() - began
    group.refresh_from_db()
    assert group.failure_code == "preflight"
    assert (f"Node follow cannot reach the leader (lead) at 127.0.0.2:{group.master_port} from 127.0.0.3: connection "
            "refused") in group.status_reason
    assert "a firewall on port" in group.status_reason
    assert group.preflight["1"]["reaches"] is False
    # Failed after the preflight's limit, not after the start timeout; the leader's queued rank left its queue.
    assert float(PREFLIGHT_S) <= waited < 60
    assert group_state(group)[1] == ["stopped", "failed"]
    assert marked_pids() == []
