"""REST API and command line for multi-node servers: who may, what bad input gets, what a start returns."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from servers.models import Server, ServerGroup
from tests.servers.groups.conftest import make_node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pair(transactional_db):
    return make_node("lead"), make_node("follow")


def post(client, body):
    return client.post("/api/servers/groups", body, content_type="application/json")


def test_an_operator_starts_lists_and_stops_a_group(client, pair, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    answer = post(client, {"profile": "big", "nodes": ["lead", "follow"]})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert [(r["rank"], r["node"], r["status"]) for r in body["ranks"]] == [(0, "lead", "queued"),
                                                                            (1, "follow", "queued")]
    assert body["master_addr"] == "127.0.0.2" and body["status"] == "starting"
    leader = client.get(f"/api/servers/{body['ranks'][0]['server_id']}").json()
    assert (leader["group"], leader["rank"]) == (body["id"], 0)
    assert [g["id"] for g in client.get("/api/servers/groups").json()] == [body["id"]]
    stopped = client.post(f"/api/servers/groups/{body['id']}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"  # queued ranks just leave the queue
    again = client.post(f"/api/servers/groups/{body['id']}/stop")
    assert again.status_code == 409 and "nothing to stop" in again.json()["detail"]


def test_one_rank_never_stops_or_starts_alone(client, pair, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    body = post(client, {"profile": "big", "nodes": ["lead", "follow"]}).json()
    follower_id = body["ranks"][1]["server_id"]
    assert client.post(f"/api/servers/{follower_id}/stop").status_code == 202
    assert ServerGroup.objects.get(pk=body["id"]).status == "stopped"
    assert set(Server.objects.filter(group_id=body["id"]).values_list("status", flat=True)) == {"stopped"}
    alone = client.post(f"/api/servers/{follower_id}/start")
    assert alone.status_code == 409 and "start the group again, never one rank" in alone.json()["detail"]


def test_members_may_not_start_or_stop_groups(client, pair, group_profile, member_user, operator_user):
    group_profile()
    client.force_login(member_user)
    refused = post(client, {"profile": "big", "nodes": ["lead", "follow"]})
    assert refused.status_code == 403 and not ServerGroup.objects.exists()
    client.force_login(operator_user)
    group_id = post(client, {"profile": "big", "nodes": ["lead", "follow"]}).json()["id"]
    client.force_login(member_user)
    assert client.post(f"/api/servers/groups/{group_id}/stop").status_code == 403
    assert client.get(f"/api/servers/groups/{group_id}").status_code == 200  # members see what runs


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"profile": "big", "nodes": ["lead", "nowhere"]}, 404, "There is no node named 'nowhere'"),
    ({"profile": "big", "nodes": ["lead"] * 17}, 422, "validation_error"),
    ({"profile": "big", "nodes": ["lead", "follow"], "restart_policy": "always"}, 422, "validation_error"),
    ({"profile": "big", "nodes": ["lead", "follow"], "gpu_memory_utilization": 1.5}, 400, "at most 1"),
    ({"profile": "nope"}, 404, "There is no profile named 'nope'"),
    ({"profile": "small", "nodes": ["lead", "follow"]}, 400, "runs on one node: start it as a server"),
])
def test_bad_input_gets_a_clear_error(client, pair, group_profile, operator_user, body, status, text):
    group_profile()
    group_profile("small", node_count=1, pipeline_parallel_size=1)
    client.force_login(operator_user)
    answer = post(client, body)
    assert answer.status_code == status, answer.content
    assert text in str(answer.json()["detail"]) or answer.json()["code"] == text
    assert not ServerGroup.objects.exists()


def test_a_single_node_start_of_a_multi_node_profile_says_how(client, pair, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    answer = client.post("/api/servers/", {"profile": "big", "node": "lead"}, content_type="application/json")
    assert answer.status_code == 400 and answer.json()["code"] == "multi_node"


def test_the_command_starts_lists_and_stops_a_group(pair, group_profile, operator_user):
    group_profile()
    out = io.StringIO()
    call_command("servers", "--as", operator_user.username, "start", "big", "--nodes", "lead,follow", stdout=out)
    group = ServerGroup.objects.get()
    assert f"group {group.pk} queued: rank 0 on lead, rank 1 on follow; master 127.0.0.2:" in out.getvalue()
    call_command("servers", "--as", operator_user.username, "groups", stdout=out)
    assert "0:lead/queued 1:follow/queued" in out.getvalue()
    call_command("servers", "--as", operator_user.username, "stop-group", str(group.pk), stdout=out)
    assert f"group {group.pk} stopped" in out.getvalue()
    with pytest.raises(CommandError, match="No node named 'elsewhere'"):
        call_command("servers", "--as", operator_user.username, "start", "big", "--nodes", "lead,elsewhere")
    with pytest.raises(CommandError, match="There is no multi-node group 999"):
        call_command("servers", "--as", operator_user.username, "stop-group", "999")


def test_a_rank_is_never_loaded_on_demand_or_unloaded_alone(pair, group_profile, operator_user):
    from servers import services
    from sparkportal.exceptions import ValidationFailed

    group = services.group_start(user=operator_user, profile=group_profile(), nodes=list(pair))
    leader = group.ranks.get(rank=0)
    with pytest.raises(ValidationFailed, match=f"set it on the group .*PUT /api/servers/groups/{group.pk}/on-demand"):
        services.server_on_demand_set(user=operator_user, server=leader, load_on_demand=False, unload_idle_minutes=5)
    services.group_stop(user=operator_user, group=group)
