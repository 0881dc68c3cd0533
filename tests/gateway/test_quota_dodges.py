"""Quotas that cannot be dodged: a stream is charged for what was relayed however it ends, a
reservation covers the worst case, the minute limit is a sliding window, and the ledger row says
what the client got."""
import time

import httpx
import pytest

from accounts import limits
from servers.models import Server
from tests.gateway.conftest import FakeVllm

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return response.json()["error"]["message"]


def _charged(portal, user, row) -> int:
    """Tokens counted against the user today, once the settlement has landed."""
    deadline = time.monotonic() + 5
    while limits.tokens_used_today(user.pk) != row.prompt_tokens + row.completion_tokens:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return limits.tokens_used_today(user.pk)


def test_a_client_that_hangs_up_mid_stream_is_charged_for_what_it_read(portal):
    user, raw = portal.member(tokens_per_day=100_000)
    payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}], "stream": True,
               "max_tokens": 60}
    read = 0
    with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                      timeout=30) as response:
        for line in response.iter_lines():
            read += '"content":"' in line and '"content":""' not in line
            if read == 10:
                break
    [row] = portal.usage_rows(user, count=1)
    assert (row.status, row.error_code) == (499, "client_disconnected")
    assert 10 <= row.completion_tokens < 60 and row.prompt_tokens > 0
    assert _charged(portal, user, row) == row.prompt_tokens + row.completion_tokens


@pytest.fixture
def breaking_engine(portal):
    fake = FakeVllm("breaking-model", env={"FAKE_VLLM_BREAK_AFTER_TOKENS": "8", "FAKE_VLLM_OUTPUT_TOKENS": "40"})
    try:
        fake.wait_ready()
        with portal.db():
            Server.objects.create(node=portal.node, served_model_name="breaking-model", port=fake.port,
                                  status=Server.Status.READY)
        time.sleep(0.6)  # the routing table's lifetime in these tests
        yield fake
    finally:
        fake.close()


def test_an_engine_that_breaks_mid_stream_still_costs_what_was_relayed(portal, breaking_engine):
    user, raw = portal.member(tokens_per_day=100_000)
    payload = {"model": "breaking-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                      timeout=30) as response:
        lines = list(response.iter_lines())
    assert sum('"content":"' in line and '"content":""' not in line for line in lines) == 7
    assert '"upstream_unreachable"' in lines[-2] or '"upstream_unreachable"' in lines[-1]
    [row] = portal.usage_rows(user, count=1)
    assert row.status == 503 and row.completion_tokens >= 7
    assert _charged(portal, user, row) >= 7


@pytest.mark.parametrize(("field", "value"), [("max_tokens", 2.5), ("max_tokens", "10"), ("max_tokens", 0),
                                              ("max_tokens", True), ("n", 1.5), ("n", 0), ("n", -3),
                                              ("max_completion_tokens", 1e3), ("n", 10**15)])
def test_a_count_that_is_not_a_positive_whole_number_is_a_400_naming_it(portal, field, value):
    user, raw = portal.member()
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={**CHAT, field: value})
    message = _error(response, 400, "invalid_integer")
    assert f'"{field}"' in message and response.json()["error"]["param"] == field
    [row] = portal.usage_rows(user, count=1)
    assert (row.status, row.error_code) == (400, "invalid_integer")


def test_n_without_max_tokens_reserves_n_whole_contexts(portal):
    # The fakes have no profile: the context is PORTAL_GATEWAY_DEFAULT_MAX_MODEL_LEN (32768) tokens.
    _user, raw = portal.member(tokens_per_day=100_000)
    payload = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}
    url = f"{portal.url}/v1/chat/completions"
    assert httpx.post(url, headers=portal.headers(raw), json={**payload, "n": 2}).status_code == 200
    message = _error(httpx.post(url, headers=portal.headers(raw), json={**payload, "n": 4}), 400,
                     "tokens_per_day_exceeded")
    assert "more than your daily limit of 100000" in message


def test_a_completions_prompt_array_reserves_each_prompt(portal):
    _user, raw = portal.member(tokens_per_day=1000)
    url = f"{portal.url}/v1/completions"
    one = {"model": "chat-model", "prompt": "hello", "max_tokens": 60}
    assert httpx.post(url, headers=portal.headers(raw), json=one).status_code == 200
    batch = {**one, "prompt": ["hello"] * 20}  # 20 answers of up to 60 tokens: 1200 > 1000
    _error(httpx.post(url, headers=portal.headers(raw), json=batch), 400, "tokens_per_day_exceeded")


def test_the_ledger_row_of_a_request_above_the_daily_limit_says_400_like_the_answer(portal):
    user, raw = portal.member(tokens_per_day=1000)
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={**CHAT, "max_tokens": 5000})
    _error(response, 400, "tokens_per_day_exceeded")
    [row] = portal.usage_rows(user, count=1)
    assert (row.status, row.error_code) == (400, "tokens_per_day_exceeded")


def test_a_burst_straddling_a_minute_boundary_passes_at_the_limit_not_twice(portal):
    _user, raw = portal.member(requests_per_minute=3)
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    while time.time() % 60 < 58.5:  # the calendar-minute window's weak spot: the last second of a minute
        time.sleep(0.2)
    before = [httpx.post(url, headers=headers, json=CHAT).status_code for _ in range(3)]
    while time.time() % 60 > 30:
        time.sleep(0.05)
    after = httpx.post(url, headers=headers, json=CHAT)
    assert before == [200, 200, 200]
    message = _error(after, 429, "requests_per_minute_exceeded")
    assert "at most 3 requests per minute" in message
    assert 50 <= int(after.headers["retry-after"]) <= 60  # when the oldest of the three leaves the window
