"""Team quotas are counted with the member's own in one atomic check: a shared limit holds in a race."""
import asyncio
import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


async def _fire(url: str, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=len(requests))) as client:
        return await asyncio.gather(*[
            client.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"}, json=payload)
            for raw, payload in requests])


def _team(portal, members, **limits):
    from accounts.teams import services

    with portal.db():
        admin = UserFactory(username=f"root{time.monotonic_ns()}", role="admin")
        team = services.team_save(actor=admin, name=f"team-{time.monotonic_ns()}", **limits)
        for user in members:
            services.team_member_add(actor=admin, team=team, user=user)
    return team


def test_two_members_sharing_fifty_requests_per_minute_get_exactly_fifty_of_two_hundred(portal):
    ann, ann_key = portal.member()
    bob, bob_key = portal.member()
    team = _team(portal, [ann, bob], requests_per_minute=50)
    requests = [(ann_key if i % 2 else bob_key, CHAT) for i in range(200)]
    responses = asyncio.run(_fire(portal.url, requests))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150, sorted(set(statuses))
    refused = next(r for r in responses if r.status_code == 429)
    error = refused.json()["error"]
    assert error["code"] == "team_requests_per_minute_exceeded"
    assert f"team {team.name} may send at most 50 requests per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Both members drew on the one shared count, and their own counts were not charged for refusals.
    ok_by = {key: sum(1 for (k, _p), r in zip(requests, responses, strict=True) if k == key and r.status_code == 200)
             for key in (ann_key, bob_key)}
    assert sum(ok_by.values()) == 50 and min(ok_by.values()) > 0


def test_a_refusal_by_the_team_counts_nothing_against_the_member(portal):
    import redis
    from django.conf import settings

    ann, ann_key = portal.member(requests_per_minute=100)
    _team(portal, [ann], requests_per_minute=3)
    responses = asyncio.run(_fire(portal.url, [(ann_key, CHAT)] * 10))
    assert [r.status_code for r in responses].count(200) == 3
    # All or nothing: the member's own per-minute log holds only the 3 that passed.
    assert redis.Redis.from_url(settings.REDIS_URL).zcard(f"portal:q:{ann.pk}:rpm") == 3


def test_a_member_limit_set_by_a_team_admin_applies_and_cannot_exceed_the_team(portal):
    from accounts.teams import selectors, services
    from sparkportal.exceptions import ValidationFailed

    ann, ann_key = portal.member()
    lead, _ = portal.member()
    team = _team(portal, [ann, lead], requests_per_minute=10)
    with portal.db():
        root = UserFactory(username="root-x", role="admin")
        services.team_member_add(actor=root, team=team, user=lead, is_team_admin=True)
        membership = selectors.membership_get(team=team, user_id=ann.pk)
        with pytest.raises(ValidationFailed, match="at most 10 requests per minute"):
            services.team_member_limits_set(actor=lead, membership=membership, requests_per_minute=11,
                                            tokens_per_day=None, concurrent_requests=None)
        services.team_member_limits_set(actor=lead, membership=membership, requests_per_minute=2,
                                        tokens_per_day=None, concurrent_requests=None)
    responses = asyncio.run(_fire(portal.url, [(ann_key, CHAT)] * 5))
    codes = [r.json()["error"]["code"] for r in responses if r.status_code == 429]
    assert [r.status_code for r in responses].count(200) == 2
    assert set(codes) == {"requests_per_minute_exceeded"}


def test_a_model_the_team_does_not_allow_is_refused_and_hidden(portal):
    ann, ann_key = portal.member()
    team = _team(portal, [ann], allowed_models=["slow-model"])
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(ann_key), json=CHAT)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "model_not_allowed_for_team" and f"Team {team.name} may not use `chat-model`" in \
        error["message"]
    listed = httpx.get(f"{portal.url}/v1/models", headers=portal.headers(ann_key)).json()["data"]
    assert [m["id"] for m in listed] == ["slow-model"]


def test_a_monthly_budget_warns_at_eighty_percent_then_stops_at_one_hundred(portal):
    from accounts.models import AuditEvent
    from accounts.teams import selectors

    ann, ann_key = portal.member()
    # The fake engine answers 2 completion tokens plus a prompt of a few tokens per call.
    probe = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(ann_key), json=CHAT)
    per_call = probe.json()["usage"]["total_tokens"]
    team = _team(portal, [ann], monthly_token_budget=per_call * 10)
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(ann_key)
    for _ in range(7):
        assert httpx.post(url, headers=headers, json=CHAT).status_code == 200
    with portal.db():
        assert not AuditEvent.objects.filter(action="accounts.team.budget_warning").exists()
        assert selectors.team_usage_month(team=team)["percent"] == 70.0
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"accounts.team.{team.pk}", channel)
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200  # 80%: warned once
    _wait_for_audit(portal, "accounts.team.budget_warning")
    event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 10)
    assert event["event"] == "team.budget_warning" and event["data"]["percent"] == 80.0
    with portal.db():
        warning = AuditEvent.objects.get(action="accounts.team.budget_warning")
        assert warning.details["team"] == team.name and warning.details["percent"] == 80.0
        assert selectors.budget_banners(user=ann)[0]["team"] == team
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200  # 90%: no second warning
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200  # 100%
    _wait_for_audit(portal, "accounts.team.budget_exhausted")
    stopped = httpx.post(url, headers=headers, json=CHAT)
    assert stopped.status_code == 403
    error = stopped.json()["error"]
    assert error["code"] == "team_budget_exhausted"
    assert f"Team {team.name} has used {per_call * 10} of its monthly token budget of {per_call * 10}" in \
        error["message"]
    with portal.db():
        assert AuditEvent.objects.filter(action="accounts.team.budget_warning").count() == 1


def _wait_for_audit(portal, action: str, timeout: float = 10) -> None:
    from accounts.models import AuditEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with portal.db():
            if AuditEvent.objects.filter(action=action).exists():
                return
        time.sleep(0.1)
    raise AssertionError(f"no {action} audit row")


def test_a_teams_concurrency_is_shared_its_members_wait_beyond_it_and_daily_tokens_are_named(portal):
    import redis
    from django.conf import settings

    ann, ann_key = portal.member()
    bob, bob_key = portal.member()
    team = _team(portal, [ann, bob], concurrent_requests=3)
    slow = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}, ], "max_tokens": 10}
    running, stop = [], threading.Event()
    client = redis.Redis.from_url(settings.REDIS_URL)

    def sample():
        while not stop.is_set():
            running.append(client.zcard(f"portal:fq:team:{team.pk}"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # Beyond the team's 3 at a time its members' requests wait in the fair queue: all are served, never
        # more than 3 at once.
        responses = asyncio.run(_fire(portal.url, [(ann_key if i % 2 else bob_key, slow) for i in range(10)]))
    finally:
        stop.set()
        sampler.join(10)
    assert [r.status_code for r in responses] == [200] * 10
    assert max(running) == 3

    carl, carl_key = portal.member()
    small = _team(portal, [carl], tokens_per_day=100)
    too_many = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(carl_key),
                          json={**CHAT, "max_tokens": 500})
    assert too_many.status_code == 429
    error = too_many.json()["error"]
    assert error["code"] == "team_tokens_per_day_exceeded" and f"team {small.name}'s 100 tokens" in error["message"]
