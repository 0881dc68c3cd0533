"""A benchmark may target a multi-node profile: its session starts the group, measures the leader and stops
every rank; a ready group is reused, never one of its followers."""
import pytest

from benchmarks.services import sessions
from servers.models import Server, ServerGroup
from tests.servers.groups.conftest import group_state, marked_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_benchmark_session_starts_measures_and_stops_a_group(two_nodes, group_profile, operator_user):
    profile = group_profile()
    leader, started = sessions.acquire(profile=profile, actor=operator_user, node_name="lead")
    assert started and (leader.rank, leader.node.name) == (0, "lead")
    leader = sessions.wait_ready(server=leader, should_stop=lambda: False)
    group = ServerGroup.objects.get()
    wait_for(lambda: group_state(group)[0] == "ready", 30, "the whole group ready")
    again, started_again = sessions.acquire(profile=profile, actor=operator_user)
    assert (again.pk, started_again) == (leader.pk, False)  # the leader, never a follower
    sessions.release(server=leader, actor=operator_user)
    wait_for(lambda: group_state(group) == ("stopped", ["stopped", "stopped"]), 60, "every rank stopped")
    assert Server.objects.get(group=group, rank=1).status == "stopped" and marked_pids() == []
