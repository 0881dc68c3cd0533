"""Load on demand and unload when idle, as servers' services: the gateway asks, these admit and act.

No worker runs here: the tasks a service sends after commit are recorded instead.
"""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from servers import lifecycle, services, tasks
from servers.models import Server, ServerEvent
from sparkportal.exceptions import Unavailable, ValidationFailed
from tests.conftest import free_port


@pytest.fixture
def sent(monkeypatch):
    """The (task name, args, queue) of every task sent to a node, and no live events."""
    calls: list[tuple[str, list, str]] = []
    lock = threading.Lock()
    for task in (tasks.server_launch_task, tasks.server_stop_task):
        def record(args=None, queue=None, _name=task.name, **_options):
            with lock:
                calls.append((_name, args, queue))
        monkeypatch.setattr(task, "apply_async", record)
    monkeypatch.setattr(lifecycle.events, "send_server_status", lambda payload: None)
    return calls


@pytest.fixture
def inflight(monkeypatch):
    """Requests in flight per server id, as the gateways would have registered them in Redis."""
    counts: dict[int, int] = {}
    monkeypatch.setattr(lifecycle.limits, "server_inflight_count", lambda server_id: counts.get(server_id, 0))
    return counts


def _stopped(node, profile, **fields) -> Server:
    defaults = {"served_model_name": profile.model_name, "port": free_port(), "status": "stopped",
                "gpu_memory_utilization": profile.gpu_memory_utilization, "load_on_demand": True}
    defaults.update(fields)
    return Server.objects.create(node=node, profile=profile, **defaults)


def _ready(node, profile, *, idle_minutes: int | None = 1, last_request_ago: timedelta | None = None) -> Server:
    now = timezone.now()
    return Server.objects.create(
        node=node, profile=profile, served_model_name=profile.model_name, port=free_port(), status="ready",
        gpu_memory_utilization=profile.gpu_memory_utilization, unload_idle_minutes=idle_minutes,
        started_at=now - timedelta(hours=1), ready_at=now - timedelta(hours=1),
        last_request_at=now - last_request_ago if last_request_ago is not None else None)


# --- server_ensure_ready ----------------------------------------------------------------------------------------

def test_ensure_ready_queues_a_server_marked_load_on_demand_and_sends_its_launch_once(
        node, make_profile, member_user, sent, django_capture_on_commit_callbacks):
    server = _stopped(node, make_profile())
    with django_capture_on_commit_callbacks(execute=True):
        queued = services.server_ensure_ready(server_id=server.pk, user_id=member_user.pk)
    assert queued.status == "queued" and queued.argv[1:3] == ["serve", "Qwen/Qwen3-0.6B"]
    assert sent == [("servers.tasks.server_launch_task", [server.pk], node.queue)]
    event = ServerEvent.objects.get(server=server)
    assert (event.old, event.new, event.reason) == ("stopped", "queued", "loaded on demand for a request of mia")
    audit = AuditEvent.objects.get(action="gateway.server.loaded_on_demand")
    assert audit.actor_name == "gateway" and audit.details["requested_by"] == "mia"

    with django_capture_on_commit_callbacks(execute=True):
        again = services.server_ensure_ready(server_id=server.pk, user_id=member_user.pk)
    assert again.status == "queued" and len(sent) == 1 and ServerEvent.objects.filter(server=server).count() == 1


@pytest.mark.parametrize("fields, reason", [
    ({"load_on_demand": False}, "its server is not marked load on demand"),
    ({"status": "stopping"}, "its server is stopping"),
    ({"status": "external"}, "its server is external"),
])
def test_ensure_ready_refuses_what_it_may_not_start(node, make_profile, sent, fields, reason):
    server = _stopped(node, make_profile(), **fields)
    with pytest.raises(Unavailable, match=reason):
        services.server_ensure_ready(server_id=server.pk)
    assert Server.objects.get(pk=server.pk).status == fields.get("status", "stopped")
    assert not ServerEvent.objects.exists() and sent == []


def test_ensure_ready_honours_the_memory_planner(node, make_profile, sent):
    Server.objects.create(node=node, served_model_name="big", port=free_port(), status="ready",
                          gpu_memory_utilization=0.6)
    server = _stopped(node, make_profile(gpu_memory_utilization=0.3), status="failed")
    with pytest.raises(ValidationFailed) as err:
        services.server_ensure_ready(server_id=server.pk)
    assert err.value.code == "over_budget"
    assert "would use 0.90 of its GPU memory budget 0.85" in err.value.message
    assert Server.objects.get(pk=server.pk).status == "failed" and not ServerEvent.objects.exists()


def test_ensure_ready_does_not_count_the_server_s_own_share_against_it(node, make_profile, sent):
    server = _stopped(node, make_profile(gpu_memory_utilization=0.8))
    assert services.server_ensure_ready(server_id=server.pk).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_start_a_server_once(node, make_profile, sent):
    server = _stopped(node, make_profile())
    barrier = threading.Barrier(6)
    results: list[str] = []

    def ask() -> None:
        try:
            barrier.wait()
            results.append(services.server_ensure_ready(server_id=server.pk).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["queued"] * 6
    assert ServerEvent.objects.filter(server=server, new="queued").count() == 1
    assert [name for name, _args, _queue in sent] == ["servers.tasks.server_launch_task"]


# --- server_idle_stop / servers_idle_stop -----------------------------------------------------------------------

def test_idle_stop_stops_only_servers_idle_past_their_limit(node, make_profile, sent, inflight,
                                                            django_capture_on_commit_callbacks):
    idle = _ready(node, make_profile("idle"), last_request_ago=timedelta(minutes=5))
    never_asked = _ready(node, make_profile("never-asked"))  # ready an hour ago, no request since
    busy_lately = _ready(node, make_profile("busy"), idle_minutes=10, last_request_ago=timedelta(minutes=5))
    kept = _ready(node, make_profile("kept"), idle_minutes=None, last_request_ago=timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        stopped = services.servers_idle_stop()
    assert sorted(stopped) == sorted([idle.pk, never_asked.pk])
    statuses = dict(Server.objects.values_list("pk", "status"))
    assert statuses == {idle.pk: "stopping", never_asked.pk: "stopping", busy_lately.pk: "ready", kept.pk: "ready"}
    assert sorted(sent) == sorted([("servers.tasks.server_stop_task", [idle.pk], node.queue),
                                   ("servers.tasks.server_stop_task", [never_asked.pk], node.queue)])
    reason = ServerEvent.objects.get(server=idle).reason
    assert reason.startswith("idle for 1 min: unloaded")
    assert AuditEvent.objects.filter(action="gateway.server.unloaded_idle").count() == 2


def test_idle_stop_never_stops_a_server_with_a_request_in_flight(node, make_profile, sent, inflight):
    server = _ready(node, make_profile(), last_request_ago=timedelta(minutes=5))
    inflight[server.pk] = 1
    assert services.servers_idle_stop() == []
    assert services.server_idle_stop(server_id=server.pk) is None
    inflight[server.pk] = 0
    assert services.servers_idle_stop() == [server.pk]


def test_a_request_that_ends_while_idle_stop_looks_keeps_the_server(node, make_profile, sent, inflight, monkeypatch):
    server = _ready(node, make_profile(), last_request_ago=timedelta(minutes=5))
    real_lock = lifecycle._lock

    def lock_after_a_request(server_id: int) -> Server:
        # The sweep found it idle; a request's end is recorded before the row lock is taken.
        services.server_touch(seen={server_id: timezone.now()})
        return real_lock(server_id)

    monkeypatch.setattr(lifecycle, "_lock", lock_after_a_request)
    assert services.servers_idle_stop() == []
    assert Server.objects.get(pk=server.pk).status == "ready" and sent == []


def test_idle_stop_leaves_a_server_that_is_no_longer_ready(node, make_profile, sent, inflight):
    server = _ready(node, make_profile(), last_request_ago=timedelta(minutes=5))
    Server.objects.filter(pk=server.pk).update(status="stopping")
    assert services.server_idle_stop(server_id=server.pk) is None
    assert not ServerEvent.objects.exists() and sent == []


def test_touch_never_moves_the_last_request_back(node, make_profile):
    server = _ready(node, make_profile(), last_request_ago=timedelta(minutes=1))
    latest = server.last_request_at
    services.server_touch(seen={server.pk: latest - timedelta(minutes=1)})
    assert Server.objects.get(pk=server.pk).last_request_at == latest
    services.server_touch(seen={server.pk: latest + timedelta(seconds=1)})
    assert Server.objects.get(pk=server.pk).last_request_at == latest + timedelta(seconds=1)


# --- server_on_demand_set ---------------------------------------------------------------------------------------

def test_operators_mark_servers_and_members_may_not(node, make_profile, operator_user, member_user):
    from django.core.exceptions import PermissionDenied

    server = _stopped(node, make_profile(), load_on_demand=False)
    with pytest.raises(PermissionDenied):
        services.server_on_demand_set(user=member_user, server=server, load_on_demand=True, unload_idle_minutes=5)
    with pytest.raises(ValidationFailed, match="at least 1 idle minute"):
        services.server_on_demand_set(user=operator_user, server=server, load_on_demand=True, unload_idle_minutes=0)
    marked = services.server_on_demand_set(user=operator_user, server=server, load_on_demand=True,
                                           unload_idle_minutes=5)
    assert (marked.load_on_demand, marked.unload_idle_minutes) == (True, 5)
    audit = AuditEvent.objects.get(action="gateway.server.on_demand_changed")
    assert audit.details["new"] == {"load_on_demand": True, "unload_idle_minutes": 5}
