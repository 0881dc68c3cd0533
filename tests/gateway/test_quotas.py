"""Quotas are counted atomically in Redis: concurrent requests cannot overshoot a limit."""
import asyncio
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


async def _fire(url: str, raw: str, n: int, payload: dict) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(*[
            client.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"}, json=payload)
            for _ in range(n)])


def _assert_openai_error(response: httpx.Response, code: str) -> str:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert body["error"]["code"] == code
    return body["error"]["message"]


def test_fifty_concurrent_requests_at_a_concurrency_limit_of_twenty_run_twenty_at_a_time(portal):
    """Over the concurrency quota a request waits in the fair queue (gateway.admission) instead of a 429."""
    user, raw = portal.member(concurrent_requests=20)
    fake = portal.fakes["slow-model"]
    # Each answer takes 3 s (60 tokens 50 ms apart): fifty sent together run in three waves.
    payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}]}
    busiest, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            busiest.append(httpx.get(f"{fake.url}/load", timeout=5).json()["server_load"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        responses = asyncio.run(_fire(portal.url, raw, 50, payload))
    finally:
        stop.set()
        sampler.join(10)
    assert [r.status_code for r in responses] == [200] * 50
    assert max(busiest) == 20
    rows = portal.usage_rows(user, count=50)
    assert [r.status for r in rows] == [200] * 50
    # Every slot was given back: the next request goes through.
    assert asyncio.run(_fire(portal.url, raw, 1, {**payload, "max_tokens": 1}))[0].status_code == 200


def test_fifty_concurrent_requests_at_twenty_per_minute_let_exactly_twenty_through(portal):
    _user, raw = portal.member(requests_per_minute=20)
    payload = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    responses = asyncio.run(_fire(portal.url, raw, 50, payload))
    assert sum(r.status_code == 200 for r in responses) == 20
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == 30
    assert 1 <= int(refused[0].headers["retry-after"]) <= 60
    assert "at most 20 requests per minute" in _assert_openai_error(refused[0], "requests_per_minute_exceeded")


def test_token_quota_reserves_the_worst_case_then_settles_to_real_usage(portal):
    from accounts import limits

    # Each request may cost prompt (estimated from its size) + max_tokens; 1000 tokens fit a few of them.
    user, raw = portal.member(tokens_per_day=1000)
    payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 300}
    responses = asyncio.run(_fire(portal.url, raw, 10, payload))
    ok = [r for r in responses if r.status_code == 200]
    assert 1 <= len(ok) <= 3, [r.status_code for r in responses]
    refused = next(r for r in responses if r.status_code == 429)
    assert "Set a lower max_tokens" in _assert_openai_error(refused, "tokens_per_day_exceeded")
    spent = sum(r.json()["usage"]["total_tokens"] for r in ok)
    portal.usage_rows(user, count=10)
    assert limits.tokens_used_today(user.pk) == spent  # reservations were replaced by the engine's usage

    too_big = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                         json={**payload, "max_tokens": 5000})
    assert too_big.status_code == 400
    assert "more than your daily limit of 1000" in _assert_openai_error(too_big, "tokens_per_day_exceeded")


def test_a_quota_change_takes_effect_on_the_next_request(portal):
    from accounts import services

    user, raw = portal.member(requests_per_minute=1)
    payload = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    assert httpx.post(url, headers=headers, json=payload).status_code == 200
    assert httpx.post(url, headers=headers, json=payload).status_code == 429
    with portal.db():
        services.quota_set(actor=user, user=user, requests_per_minute=100)
    assert httpx.post(url, headers=headers, json=payload).status_code == 200
    with portal.db():
        services.quota_set(actor=user, user=user, requests_per_minute=100, allowed_models=["slow-model"])
    refused = httpx.post(url, headers=headers, json=payload)
    assert refused.status_code == 403
    assert "Ask an admin to allow it" in _assert_openai_error(refused, "model_not_allowed")


def test_role_defaults_apply_and_a_user_row_overrides_them(portal, admin_user):
    from accounts import services

    with portal.db():
        services.quota_set(actor=admin_user, role="member", requests_per_minute=1)
    user, raw = portal.member()
    payload = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    assert [httpx.post(url, headers=headers, json=payload).status_code for _ in range(2)] == [200, 429]
    with portal.db():
        services.quota_set(actor=admin_user, user=user, requests_per_minute=50)
        from accounts.models import AuditEvent

        assert AuditEvent.objects.filter(action="accounts.quota.changed").count() == 2
    assert httpx.post(url, headers=headers, json=payload).status_code == 200
