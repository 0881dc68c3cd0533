"""A multi-node group marked load on demand is started whole by the first requests for its model (once, however many
arrive together, every rank on its own node's worker), and unloaded whole when idle, never under an open stream."""
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AuditEvent
from servers import services
from servers.groups import services as groups
from servers.models import Server, ServerEvent, ServerGroup
from tests.gateway.conftest import concurrent_streams
from tests.servers.groups.conftest import group_state, kill_rank, marked_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
G = ServerGroup.Status
STREAM = {"model": "big", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 3}


def _queued_count(group: ServerGroup) -> dict[int, int]:
    """How many times each rank went stopped -> queued (a start)."""
    return {s.rank: ServerEvent.objects.filter(server=s, old="stopped", new="queued").count()
            for s in Server.objects.filter(group=group)}


def test_concurrent_requests_start_a_stopped_group_once_and_idle_stops_it_whole(
        two_nodes, group_profile, operator_user, member_user, asgi_server):
    # Tokens come slowly enough that a stream is still open on the leader while the idle stop looks.
    profile = group_profile(extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_RENDEZVOUS_TIMEOUT_S": "20",
                                       "FAKE_VLLM_TOKEN_DELAY_S": "0.1", "FAKE_VLLM_OUTPUT_TOKENS": "30"})
    group = groups.group_start(user=operator_user, profile=profile, nodes=[two_nodes.lead, two_nodes.follow])
    wait_for(lambda: group_state(group) == (G.READY, ["ready", "ready"]), 90, "the group to be ready")
    groups.group_stop(user=operator_user, group=group)
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")

    _key, raw = account_services.api_key_create(owner=member_user, name="t")
    refused = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={**STREAM, "stream": False},
                         headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert refused.status_code == 503 and "multi-node group) \"load on demand\"" in refused.json()["error"]["message"]

    _okey, oraw = account_services.api_key_create(owner=operator_user, name="op")
    marked = httpx.put(f"{asgi_server.url}/api/servers/groups/{group.pk}/on-demand", timeout=30,
                       headers={"Authorization": f"Bearer {oraw}"},
                       json={"load_on_demand": True, "unload_idle_minutes": 1})
    assert marked.status_code == 200 and marked.json()["load_on_demand"] is True, marked.text

    began = time.monotonic()
    results = concurrent_streams(asgi_server.url, raw, "big", 8)
    load_s = time.monotonic() - began
    assert [status for status, _ in results] == [200] * 8
    for _status, body in results:
        assert '"content"' in body and body.rstrip().endswith("data: [DONE]"), body
    assert _queued_count(group) == {0: 2, 1: 2}  # the operator's start, then exactly one start on demand
    assert AuditEvent.objects.filter(action="gateway.group.loaded_on_demand").count() == 1
    assert group_state(group) == (G.READY, ["ready", "ready"])
    print(f"group loaded on demand for 8 concurrent requests in {load_s:.1f} s")

    later = timezone.now() + timedelta(minutes=5)
    with httpx.stream("POST", f"{asgi_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                      json={**STREAM, "max_tokens": 30}, timeout=30) as response:
        lines = response.iter_lines()
        while '"content"' not in next(lines):
            pass
        assert services.groups_idle_stop(now=later) == []  # a stream is open on the leader: the group stays
        rest = list(lines)
    assert [line for line in rest if line][-1] == "data: [DONE]"
    wait_for(lambda: services.groups_idle_stop(now=later) == [group.pk], 10, "the idle stop")
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the idle group to stop whole")
    group.refresh_from_db()
    assert group.status_reason == "every rank stopped"
    assert "idle for 1 min" in ServerEvent.objects.filter(server__group=group, new="stopping").latest("at", "id").reason
    assert AuditEvent.objects.filter(action="gateway.group.unloaded_idle", target_id=str(group.pk)).exists()
    wait_for(lambda: marked_pids() == [], 20, "no engine left")


def test_a_request_starts_a_failed_group_again_on_every_node(two_nodes, group_profile, operator_user, member_user,
                                                             asgi_server):
    group = groups.group_start(user=operator_user, profile=group_profile(), nodes=[two_nodes.lead, two_nodes.follow])
    services.group_on_demand_set(user=operator_user, group=group, load_on_demand=True, unload_idle_minutes=None)
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the group to be ready")
    follower = Server.objects.get(group=group, rank=1)
    kill_rank(follower, two_nodes.follow)
    # As long as the group's start may take: under a full parallel run a rank's stop waits for its node's worker.
    wait_for(lambda: group_state(group)[0] == G.FAILED and all(s in ("stopped", "failed")
                                                                for s in group_state(group)[1]), 90,
             lambda: f"the group to fail with every rank down (now {group_state(group)})")

    _key, raw = account_services.api_key_create(owner=member_user, name="t")
    answer = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={**STREAM, "stream": False},
                        headers={"Authorization": f"Bearer {raw}"}, timeout=120)
    assert answer.status_code == 200, answer.text
    # The request waited for the leader; a follower is marked ready by its own node's next look at the leader.
    wait_for(lambda: group_state(group) == (G.READY, ["ready", "ready"]), 30, "every rank to be ready")
    audit = AuditEvent.objects.get(action="gateway.group.loaded_on_demand")
    assert audit.details["requested_by"] == member_user.username
    groups.group_stop(user=operator_user, group=group)
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")
    wait_for(lambda: marked_pids() == [], 20, "no engine left")
