"""Who may mark a multi-node group load on demand / unload when idle, what input is refused and how, and what the
gateway's snapshot makes of a group; rows only, no worker (nothing may sit in a node's queue after these tests)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from gateway import selectors as gateway_selectors
from servers import logs, services
from servers.groups import on_demand
from servers.models import Server, ServerGroup
from sparkportal.exceptions import Unavailable
from tests.servers.groups.conftest import make_node

pytestmark = pytest.mark.django_db
G = ServerGroup.Status


@pytest.fixture
def stopped_group(group_profile, operator_user):
    """A stopped two-node group of profile `big` as a finished run leaves it: the group row and its two ranks."""
    lead, follow = make_node("lead"), make_node("follow")
    group = ServerGroup.objects.create(profile=group_profile(), served_model_name="big", node_count=2,
                                       master_addr="127.0.0.2", master_port=29511, status=G.STOPPED,
                                       started_by=operator_user)
    for rank, node in enumerate((lead, follow)):
        Server.objects.create(node=node, profile=group.profile, served_model_name="big", port=18100 + rank,
                              host=node.host_ip, status=Server.Status.STOPPED, group=group, rank=rank,
                              gpu_memory_utilization=0.3)
    return group


def _put(client, group_id, body):
    return client.put(f"/api/servers/groups/{group_id}/on-demand", body, content_type="application/json")


def test_an_operator_marks_a_group_through_the_api_and_it_is_audited(client, stopped_group, operator_user):
    client.force_login(operator_user)
    answer = _put(client, stopped_group.pk, {"load_on_demand": True, "unload_idle_minutes": 30})
    assert answer.status_code == 200, answer.content
    assert (answer.json()["load_on_demand"], answer.json()["unload_idle_minutes"]) == (True, 30)
    audit = AuditEvent.objects.get(action="servers.group.on_demand_changed")
    assert audit.details["new"] == {"load_on_demand": True, "unload_idle_minutes": 30}
    assert client.get(f"/api/servers/groups/{stopped_group.pk}").json()["load_on_demand"] is True
    _put(client, stopped_group.pk, {"load_on_demand": True, "unload_idle_minutes": 30})
    assert AuditEvent.objects.filter(action="servers.group.on_demand_changed").count() == 1  # no change, no entry


def test_members_and_strangers_may_not_mark_a_group(client, stopped_group, member_user):
    assert _put(client, stopped_group.pk, {"load_on_demand": True}).status_code in (401, 403)
    client.force_login(member_user)
    answer = _put(client, stopped_group.pk, {"load_on_demand": True, "unload_idle_minutes": 5})
    assert answer.status_code == 403 and "operators" in answer.json()["detail"]
    page = client.post(f"/servers/groups/{stopped_group.pk}/on-demand/", {"load_on_demand": "on"})
    assert page.status_code == 403 and "Only operators and admins" in page.content.decode()
    stopped_group.refresh_from_db()
    assert (stopped_group.load_on_demand, stopped_group.unload_idle_minutes) == (False, None)
    assert not AuditEvent.objects.filter(action="servers.group.on_demand_changed").exists()


@pytest.mark.parametrize(("minutes", "words"), [(0, "Unload after 1 to 10080 idle minutes"),
                                                (-3, "not -3"), (10081, "not 10081"),
                                                (2**63, "")])
def test_idle_minutes_out_of_bounds_are_refused_with_what_to_fix(client, stopped_group, operator_user, minutes, words):
    client.force_login(operator_user)
    answer = _put(client, stopped_group.pk, {"load_on_demand": True, "unload_idle_minutes": minutes})
    assert answer.status_code == 400, answer.content
    assert words in answer.json()["detail"]
    stopped_group.refresh_from_db()
    assert stopped_group.load_on_demand is False


def test_bad_types_and_unknown_groups_are_clear_errors_never_500(client, stopped_group, operator_user):
    client.force_login(operator_user)
    assert _put(client, stopped_group.pk, {"load_on_demand": "maybe"}).status_code in (400, 422)
    assert _put(client, stopped_group.pk, {"unload_idle_minutes": "ten"}).status_code in (400, 422)
    missing = _put(client, 999999, {"load_on_demand": True})
    assert missing.status_code == 404 and "no multi-node group #999999" in missing.json()["detail"]
    assert _put(client, 2**70, {"load_on_demand": True}).status_code == 400
    page = client.post(f"/servers/groups/{2**70}/on-demand/", {"load_on_demand": "on"})
    assert page.status_code in (400, 404)
    page = client.post("/servers/groups/999999/on-demand/", {"load_on_demand": "on"})
    assert page.status_code == 404


def test_a_group_whose_profile_now_fits_one_node_is_refused(client, stopped_group, operator_user):
    stopped_group.profile.node_count = 1
    stopped_group.profile.pipeline_parallel_size = 1
    stopped_group.profile.save()
    client.force_login(operator_user)
    answer = _put(client, stopped_group.pk, {"load_on_demand": True})
    assert answer.status_code == 400 and answer.json()["code"] == "single_node"
    assert "now runs on one node: start it as a server" in answer.json()["detail"]
    # Turning it off stays possible.
    assert _put(client, stopped_group.pk, {"load_on_demand": False}).status_code == 200


def test_a_rank_is_never_marked_alone_and_the_error_names_the_group_endpoint(client, stopped_group, operator_user):
    client.force_login(operator_user)
    follower = Server.objects.get(group=stopped_group, rank=1)
    answer = client.put(f"/api/gateway/servers/{follower.pk}/on-demand", {"load_on_demand": True},
                        content_type="application/json")
    assert answer.status_code == 400 and answer.json()["code"] == "group_rank"
    assert f"PUT /api/servers/groups/{stopped_group.pk}/on-demand" in answer.json()["detail"]


def test_the_leaders_page_sets_the_policy_and_says_what_to_fix(client, stopped_group, operator_user, member_user,
                                                               monkeypatch):
    monkeypatch.setattr(logs, "REMOTE_READ_TIMEOUT_S", 0.1)  # no worker reads the ranks' logs here
    leader = Server.objects.get(group=stopped_group, rank=0)
    client.force_login(operator_user)
    page = client.get(f"/servers/{leader.pk}/").content.decode()
    assert "data-group-on-demand" in page and "Not loaded on demand" in page
    assert "The worker of node lead did not send the log" in page  # said on the page, not a 500
    answer = client.post(f"/servers/groups/{stopped_group.pk}/on-demand/", {"load_on_demand": "on",
                                                                          "unload_idle_minutes": "0"}, follow=True)
    assert "Unload after 1 to 10080 idle minutes" in answer.content.decode()
    answer = client.post(f"/servers/groups/{stopped_group.pk}/on-demand/", {"unload_idle_minutes": "soon"},
                         follow=True)
    assert "Unload after a whole number of idle minutes" in answer.content.decode()
    answer = client.post(f"/servers/groups/{stopped_group.pk}/on-demand/", {"load_on_demand": "on",
                                                                          "unload_idle_minutes": "15"}, follow=True)
    text = answer.content.decode()
    assert "loads on demand, unloads after 15 idle min" in text
    assert "unloads every rank after 15 idle minutes" in text
    client.force_login(member_user)
    assert "data-group-on-demand" not in client.get(f"/servers/{leader.pk}/").content.decode()


def test_the_admin_edits_only_the_policy_through_the_service(client, stopped_group, admin_user):
    client.force_login(admin_user)
    url = f"/admin/servers/servergroup/{stopped_group.pk}/change/"
    assert client.get(url).status_code == 200
    bad = client.post(url, {"load_on_demand": "on", "unload_idle_minutes": "0"})
    assert bad.status_code == 200 and "Unload after 1 to 10080 idle minutes" in bad.content.decode()
    good = client.post(url, {"load_on_demand": "on", "unload_idle_minutes": "20", "status": "ready"})
    assert good.status_code == 302
    stopped_group.refresh_from_db()
    assert (stopped_group.load_on_demand, stopped_group.unload_idle_minutes, stopped_group.status) == (
        True, 20, "stopped")
    assert AuditEvent.objects.filter(action="servers.group.on_demand_changed", actor=admin_user).exists()
    assert client.get("/admin/servers/servergroup/add/").status_code == 403


def test_the_gateway_sees_a_marked_group_as_loadable_through_its_leader(stopped_group):
    leader = Server.objects.get(group=stopped_group, rank=0)
    assert gateway_selectors.routing_snapshot()["big"].idle == [leader.pk]
    ServerGroup.objects.filter(pk=stopped_group.pk).update(load_on_demand=True)
    entry = gateway_selectors.routing_snapshot()["big"]
    assert (entry.loadable, entry.idle) == ([leader.pk], [])  # the follower is never a route
    ServerGroup.objects.filter(pk=stopped_group.pk).update(status=G.STOPPING)
    assert gateway_selectors.routing_snapshot()["big"].stopping == [leader.pk]


def test_a_request_for_an_unmarked_or_stopping_group_says_why(stopped_group):
    leader = Server.objects.get(group=stopped_group, rank=0)
    with pytest.raises(Unavailable, match=f"group #{stopped_group.pk} is not marked load on demand"):
        services.server_ensure_ready(server_id=leader.pk)
    ServerGroup.objects.filter(pk=stopped_group.pk).update(load_on_demand=True, status=G.STOPPING)
    with pytest.raises(Unavailable, match="is stopping"):
        services.server_ensure_ready(server_id=leader.pk)
    assert set(Server.objects.filter(group=stopped_group).values_list("status", flat=True)) == {"stopped"}


def test_idleness_is_the_leaders_last_request_and_a_busy_group_stays(stopped_group):
    now = timezone.now()
    leader = Server.objects.get(group=stopped_group, rank=0)
    ServerGroup.objects.filter(pk=stopped_group.pk).update(status=G.READY, unload_idle_minutes=10,
                                                           ready_at=now - timedelta(hours=1))
    Server.objects.filter(group=stopped_group).update(status=Server.Status.READY)
    Server.objects.filter(pk=leader.pk).update(last_request_at=now - timedelta(minutes=5))
    assert services.groups_idle_stop(now=now) == []  # a request ended five minutes ago
    assert on_demand.group_idle_stop(group_id=stopped_group.pk, now=now) is None
    stopped_group.refresh_from_db()
    assert stopped_group.status == G.READY


def test_the_minutely_idle_task_stops_idle_groups_too(monkeypatch):
    from servers import tasks

    calls = []
    monkeypatch.setattr(services, "groups_idle_stop", lambda **kw: calls.append("groups") or [])
    monkeypatch.setattr(services, "servers_idle_stop", lambda **kw: calls.append("servers") or [])
    monkeypatch.setattr(services, "servers_idle_sleep", lambda **kw: calls.append("sleep") or [])
    tasks.servers_idle_stop_task()
    assert calls == ["servers", "groups", "sleep"]
