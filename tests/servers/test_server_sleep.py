"""Sleep and wake through a real worker and the stand-in engine: API, pages and command for operators only,
confirmed by the engine (not taken on trust), swaps, the idle policy, and a sleep done outside the portal."""
import time
from datetime import timedelta

import httpx
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AuditEvent
from servers import services
from servers.metrics import services as metric_services
from servers.models import Server, ServerEvent
from tests.servers.conftest import wait_status


def _api(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name=f"cli-{user.api_keys.count()}")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def _wait(server: Server, done, timeout: float = 20.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if done(server):
            return server
        time.sleep(0.05)
    raise AssertionError(f"server #{server.pk} is {server.status} ({server.status_reason})")


def _asleep(server: Server) -> Server:
    return _wait(server, lambda s: s.status == "sleeping" and s.slept_at is not None)


def _engine_sleeping(server: Server) -> bool:
    return httpx.get(f"{server.base_url}/is_sleeping", timeout=5).json()["is_sleeping"]


@pytest.fixture
def sleepy(celery_worker, node, make_profile, operator_user):
    """Start a server of a profile with sleep mode on; stop whatever the test left running."""
    started = []

    def start(name: str = "sleepy", **fields) -> Server:
        fields.setdefault("enable_sleep_mode", True)
        profile = make_profile(name, **fields)
        server = services.server_start(user=operator_user, profile=profile, node=node, allow_replica=True)
        started.append(server)
        return wait_status(server, "ready")

    yield start
    for server in started:
        server.refresh_from_db()
        if server.is_live and server.status != "stopping":
            services.server_stop(user=operator_user, server=server)
        wait_status(server, "stopped", "failed")


def test_an_operator_puts_a_server_to_sleep_and_wakes_it_through_the_api(sleepy, operator_user):
    server = sleepy()
    assert "--enable-sleep-mode" in server.argv
    api = _api(operator_user)
    slept = api.post(f"/api/servers/{server.pk}/sleep", {"level": 1}, content_type="application/json")
    assert slept.status_code == 202 and slept.json()["status"] == "sleeping" and slept.json()["sleep_level"] == 1
    server = _asleep(server)
    assert "/is_sleeping true, vllm:engine_sleep_state level 1" in server.status_reason
    assert _engine_sleeping(server) and httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
    woken = api.post(f"/api/servers/{server.pk}/wake")
    assert woken.status_code == 202 and woken.json()["status"] == "waking"
    server = wait_status(server, "ready")
    assert server.sleep_level is None and not _engine_sleeping(server)
    history = [(e.old, e.new) for e in ServerEvent.objects.filter(server=server).order_by("at", "id")]
    assert history[-3:] == [("ready", "sleeping"), ("sleeping", "waking"), ("waking", "ready")]
    actions = set(AuditEvent.objects.filter(target_id=str(server.pk)).values_list("action", flat=True))
    assert {"servers.server.slept", "servers.server.woken"} <= actions
    again = api.post(f"/api/servers/{server.pk}/wake")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_members_may_not_sleep_or_wake_by_api_page_or_command(sleepy, operator_user, member_user):
    server = sleepy()
    member = _api(member_user)
    assert member.post(f"/api/servers/{server.pk}/sleep", {"level": 1}, content_type="application/json"
                       ).status_code == 403
    assert member.put(f"/api/servers/{server.pk}/sleep-policy", {"sleep_idle_minutes": 1},
                      content_type="application/json").status_code == 403
    page = Client()
    page.force_login(member_user)
    assert 'data-action="sleep"' not in page.get(f"/servers/{server.pk}/").content.decode()
    page.post(f"/servers/{server.pk}/sleep/", {"level": "1"})
    with pytest.raises(CommandError, match="operators"):
        call_command("servers", "--as", member_user.username, "sleep", str(server.pk))
    assert Server.objects.get(pk=server.pk).status == "ready" and not _engine_sleeping(server)
    Server.objects.filter(pk=server.pk).update(status="sleeping", sleep_level=1)  # as if asleep, for the wake side
    assert member.post(f"/api/servers/{server.pk}/wake").status_code == 403
    page.post(f"/servers/{server.pk}/wake/")
    with pytest.raises(CommandError, match="operators"):
        call_command("servers", "--as", member_user.username, "wake", str(server.pk))
    assert Server.objects.get(pk=server.pk).status == "sleeping"
    Server.objects.filter(pk=server.pk).update(status="ready", sleep_level=None)
    assert not AuditEvent.objects.filter(action__in=["servers.server.slept", "servers.server.woken"]).exists()


def test_the_page_and_the_command_sleep_and_wake_for_operators(sleepy, operator_user):
    server = sleepy()
    page = Client()
    page.force_login(operator_user)
    assert 'data-action="sleep"' in page.get(f"/servers/{server.pk}/").content.decode()
    page.post(f"/servers/{server.pk}/sleep/", {"level": "2"})
    server = _asleep(server)
    assert server.sleep_level == 2
    body = page.get(f"/servers/{server.pk}/").content.decode()
    assert 'data-action="wake"' in body and 'data-sleep-level="2"' in body
    call_command("servers", "--as", operator_user.username, "wake", str(server.pk), "--wait")
    assert Server.objects.get(pk=server.pk).status == "ready"
    call_command("servers", "--as", operator_user.username, "sleep", str(server.pk), "--level", "1", "--wait")
    assert _engine_sleeping(Server.objects.get(pk=server.pk))
    call_command("servers", "--as", operator_user.username, "wake", str(server.pk), "--wait")
    assert not _engine_sleeping(server)


def test_a_server_without_sleep_mode_is_refused_and_has_no_dev_endpoints(sleepy, operator_user):
    server = sleepy("plain", enable_sleep_mode=False)
    refused = _api(operator_user).post(f"/api/servers/{server.pk}/sleep", {"level": 1},
                                       content_type="application/json")
    assert refused.status_code == 400 and refused.json()["code"] == "sleep_mode_off"
    # The portal set VLLM_SERVER_DEV_MODE only for sleep-mode profiles, so the engine has no dev endpoints.
    assert httpx.post(f"{server.base_url}/sleep", params={"level": 1}, timeout=5).status_code == 404


def test_an_engine_that_answers_but_does_not_sleep_stays_ready(sleepy, operator_user, settings):
    settings.PORTAL_SLEEP_CONFIRM_S = 0.5
    server = sleepy(extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_SLEEP_IGNORE": "1"})
    services.server_sleep(user=operator_user, server=server, level=1)
    server = wait_status(server, "ready")
    assert server.status_reason.startswith("did not go to sleep: /is_sleeping said False")


def test_a_swap_sleeps_one_and_wakes_the_other_as_one_step(sleepy, operator_user, node):
    node.gpu_facts = [{"index": 0, "memory_total_gb": 80.0, "memory_used_gb": 2.0}]
    node.save()
    first = sleepy("first", gpu_memory_utilization=0.5)
    services.server_sleep(user=operator_user, server=first, level=1)
    _asleep(first)
    second = sleepy("second", gpu_memory_utilization=0.5)
    # 0.5 + 0.5 exceeds the budget 0.85: the wake alone is refused, the swap is admitted.
    refused = _api(operator_user).post(f"/api/servers/{first.pk}/wake")
    assert refused.status_code == 400 and refused.json()["code"] == "over_budget"
    swapped = _api(operator_user).post("/api/servers/swap", {"sleep": second.pk, "wake": first.pk, "level": 1},
                                       content_type="application/json")
    assert swapped.status_code == 202 and swapped.json()["id"] == first.pk
    assert wait_status(first, "ready") and _asleep(second).sleep_level == 1
    assert _engine_sleeping(second) and not _engine_sleeping(first)


def test_the_idle_policy_sleeps_before_the_unload_and_a_busy_server_stays_awake(sleepy, operator_user):
    server = sleepy()
    policy = _api(operator_user).put(f"/api/servers/{server.pk}/sleep-policy",
                                     {"sleep_idle_minutes": 5, "level": 1}, content_type="application/json")
    assert policy.status_code == 200 and policy.json()["sleep_idle_minutes"] == 5
    Server.objects.filter(pk=server.pk).update(unload_idle_minutes=60)
    now = timezone.now()
    assert services.servers_idle_sleep(now=now + timedelta(minutes=2)) == []
    assert services.servers_idle_stop(now=now + timedelta(minutes=10)) == []
    assert services.servers_idle_sleep(now=now + timedelta(minutes=10)) == [server.pk]
    server = _asleep(server)
    assert "idle for 5 min" in server.events.filter(new="sleeping").latest("at", "id").reason
    assert AuditEvent.objects.filter(action="gateway.server.slept_idle", target_id=str(server.pk)).exists()
    assert services.servers_idle_stop(now=now + timedelta(minutes=61)) == [server.pk]
    wait_status(server, "stopped")


def test_a_sleep_done_outside_the_portal_is_seen_by_the_scrape(sleepy):
    server = sleepy()
    assert httpx.post(f"{server.base_url}/sleep", params={"level": 2}, timeout=5).status_code == 200
    cache.delete(f"servers:metrics:claim:{server.node.name}")
    metric_services.server_metrics_scrape_node(node_name=server.node.name)
    server.refresh_from_db()
    assert server.status == "sleeping" and server.sleep_level == 2
    assert "outside the portal" in server.status_reason
    assert httpx.post(f"{server.base_url}/wake_up", timeout=5).status_code == 200
    cache.delete(f"servers:metrics:claim:{server.node.name}")
    metric_services.server_metrics_scrape_node(node_name=server.node.name)
    assert Server.objects.get(pk=server.pk).status == "ready"
