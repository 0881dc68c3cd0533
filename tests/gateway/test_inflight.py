"""Per-server in-flight counts in Redis: shared by gateway processes, released however a request ends,
and never leaked by a process that died mid-request."""
import asyncio
import time

import httpx
import pytest
import redis
from django.conf import settings

from accounts.limits import lease_seconds, server_inflight_key
from gateway.inflight import inflight_acquire, inflight_counts, inflight_release

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


def _counts(server_ids):
    return asyncio.run(inflight_counts(server_ids))


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_acquire_release_and_count(portal):
    async def scenario():
        await inflight_acquire(901, "a")
        await inflight_acquire(901, "b")
        await inflight_acquire(901, "b")  # the same request counts once
        await inflight_acquire(902, "c")
        first = await inflight_counts([901, 902, 903])
        await inflight_release(901, "a")
        await inflight_release(901, "a")  # twice is harmless
        await inflight_release(902, "c")
        return first, await inflight_counts([901, 902])

    first, after = asyncio.run(scenario())
    assert first == {901: 2, 902: 1, 903: 0}
    assert after == {901: 1, 902: 0}


def test_an_entry_of_a_killed_process_ages_out(portal):
    client = redis.Redis.from_url(settings.REDIS_URL)
    # An entry its process stopped renewing a lease ago: the process died without releasing.
    client.zadd(server_inflight_key(904), {"dead:1": time.time() - lease_seconds() - 1})
    asyncio.run(inflight_acquire(904, "live:1"))
    assert _counts([904]) == {904: 1}
    assert client.zscore(server_inflight_key(904), "dead:1") is None


def _stream(portal, raw, model="slow-model"):
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    return httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                        timeout=30)


def test_a_streaming_request_counts_while_it_runs_and_is_released_at_the_end(portal):
    _user, raw = portal.member()
    server_id = portal.servers["slow-model"].pk
    seen = []
    with _stream(portal, raw) as response:
        for line in response.iter_lines():
            if '"content"' in line and not seen:
                seen.append(_counts([server_id])[server_id])
    assert seen == [1]
    assert _wait(lambda: _counts([server_id])[server_id] == 0)


def test_a_client_disconnect_releases_the_slot(portal):
    _user, raw = portal.member()
    server_id = portal.servers["slow-model"].pk
    with _stream(portal, raw) as response:
        lines = response.iter_lines()
        while '"content"' not in next(lines):
            pass
        assert _counts([server_id])[server_id] == 1
    assert _wait(lambda: _counts([server_id])[server_id] == 0)


def test_an_upstream_error_releases_the_slot(portal):
    _user, raw = portal.member()
    server_id = portal.servers["chat-model"].pk
    # The engine refuses a prompt longer than its context: a 400 relayed from upstream.
    payload = {"model": "chat-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**7}
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload, timeout=30)
    assert response.status_code >= 400
    assert _wait(lambda: _counts([server_id])[server_id] == 0)


def test_two_gateway_processes_share_the_counts(portal, tmp_path):
    from tests.conftest import stop_process, subprocess_env
    from tests.gateway.conftest import _daphne

    _user, raw = portal.member()
    server_id = portal.servers["slow-model"].pk
    other = _daphne(subprocess_env(PORTAL_GATEWAY_ROUTES_TTL_S="0.5"), tmp_path)
    try:
        payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with _stream(portal, raw) as first, httpx.stream(
                "POST", f"{other.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                timeout=30) as second:
            a, b = first.iter_lines(), second.iter_lines()
            while '"content"' not in next(a):
                pass
            while '"content"' not in next(b):
                pass
            assert _counts([server_id])[server_id] == 2
    finally:
        stop_process(other.proc)
    assert _wait(lambda: _counts([server_id])[server_id] == 0)
