"""Admission of a multi-node start on every node of the group: budget, each node's share of the memory, weights."""
import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied

from models_registry.models import NodeWeights
from servers.groups import services as groups
from servers.models import Server, ServerGroup
from sparkportal.exceptions import ValidationFailed
from tests.servers.groups.conftest import make_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(db):
    return make_node("lead"), make_node("follow")


def gpus(total: float, used: float) -> list[dict]:
    return [{"index": 0, "name": "GPU", "memory_total_gb": total, "memory_used_gb": used}]


def test_a_node_without_the_weights_is_named(pair, group_profile, operator_user):
    lead, follow = pair
    NodeWeights.objects.filter(node=follow).update(repos=[{"repo_id": "other/model"}])
    with pytest.raises(ValidationFailed) as exc:
        groups.group_start(user=operator_user, profile=group_profile(), nodes=[lead, follow])
    assert exc.value.code == "weights_missing"
    assert "Node follow lacks the weights of Qwen/Qwen3-0.6B" in str(exc.value) and "Node lead" not in str(exc.value)
    assert not ServerGroup.objects.exists() and not Server.objects.exists()


def test_a_node_without_memory_for_its_share_refuses_the_group(pair, group_profile, operator_user):
    lead, follow = pair
    profile = group_profile()
    # The leader of an earlier run measured 30 GB: each node's share. follow has 18 GB free, lead 70.
    earlier = ServerGroup.objects.create(profile=profile, served_model_name="big", node_count=2,
                                         master_addr="127.0.0.2", master_port=29999, status=ServerGroup.Status.STOPPED)
    Server.objects.create(node=lead, profile=profile, served_model_name="big", port=20001, status="stopped",
                          group=earlier, rank=0, measured_memory_gb=30.0)
    lead.gpu_facts, follow.gpu_facts = gpus(80, 10), gpus(48, 30)
    lead.save(), follow.save()
    with pytest.raises(ValidationFailed) as exc:
        groups.group_start(user=operator_user, profile=profile, nodes=[lead, follow], gpu_memory_utilization=0.8)
    message = str(exc.value)
    assert exc.value.code == "not_enough_memory"
    assert "node follow has only 18.0 GB free" in message and "about 30.0 GB (measured at its last start (one node's " \
                                                                "share))" in message
    assert "node lead" not in message


def test_a_node_over_its_budget_refuses_the_group(pair, group_profile, operator_user):
    lead, follow = pair
    follow.memory_budget = 0.2
    follow.save()
    with pytest.raises(ValidationFailed, match="Node follow would use 0.30 of its GPU memory budget 0.20"):
        groups.group_start(user=operator_user, profile=group_profile(), nodes=[lead, follow])


@pytest.mark.parametrize(("names", "message"), [
    (["lead"], r"name 2 different nodes \(the first is the leader\), not 1"),
    (["lead", "lead"], "name 2 different nodes"),
])
def test_the_operator_names_as_many_nodes_as_the_placement(pair, group_profile, operator_user, names, message):
    nodes = {n.name: n for n in pair}
    with pytest.raises(ValidationFailed, match=message):
        groups.group_start(user=operator_user, profile=group_profile(), nodes=[nodes[n] for n in names])


def test_a_node_without_a_host_ip_is_named(pair, group_profile, operator_user):
    lead, follow = pair
    follow.host_ip = None
    follow.save()
    with pytest.raises(ValidationFailed, match="Node follow has no host IP for multi-node servers"):
        groups.group_start(user=operator_user, profile=group_profile(), nodes=[lead, follow])


def test_the_portal_picks_the_nodes_with_room(pair, group_profile, operator_user):
    lead, follow = pair
    make_node("stale", last_heartbeat_at=None)
    lead.gpu_facts, follow.gpu_facts = gpus(80, 70), gpus(80, 10)  # follow has more free memory: it leads
    lead.save(), follow.save()
    group = groups.group_start(user=operator_user, profile=group_profile())
    ranks = list(Server.objects.filter(group=group).order_by("rank").values_list("node__name", flat=True))
    assert ranks == ["follow", "lead"] and group.master_addr == "127.0.0.3"
    assert settings.PORTAL_GROUP_MASTER_PORT_FIRST <= group.master_port <= settings.PORTAL_GROUP_MASTER_PORT_LAST


def test_a_single_node_start_of_a_multi_node_profile_is_refused(pair, group_profile, operator_user):
    from servers import lifecycle

    with pytest.raises(ValidationFailed, match="spans 2 nodes: start it as a multi-node server"):
        lifecycle.server_start(user=operator_user, profile=group_profile(), node=pair[0])


def test_members_may_not_start_or_stop_a_group(pair, group_profile, member_user):
    with pytest.raises(PermissionDenied):
        groups.group_start(user=member_user, profile=group_profile(), nodes=list(pair))
    group = ServerGroup.objects.create(profile=group_profile("b2"), served_model_name="b2", node_count=2,
                                       master_addr="127.0.0.2", master_port=29502)
    with pytest.raises(PermissionDenied):
        groups.group_stop(user=member_user, group=group)
