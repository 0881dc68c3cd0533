"""Streams are relayed as they arrive; a client that hangs up cancels the engine's request; the
ledger loses nothing when the portal is stopped cleanly."""
import json
import os
import signal
import time

import httpx
import pytest

from tests.conftest import subprocess_env
from tests.gateway.conftest import _daphne

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _carries_text(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


def test_chunks_arrive_while_the_engine_is_still_generating(portal):
    _user, raw = portal.member()
    payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    arrivals = []
    with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                      timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                arrivals.append(time.monotonic())
    # 60 tokens 50 ms apart: relayed one by one, not buffered until the end.
    assert len(arrivals) >= 60 and arrivals[-1] - arrivals[0] > 2.0


def test_a_client_disconnect_cancels_the_upstream_request(portal):
    user, raw = portal.member()
    fake = portal.fakes["slow-model"]
    aborted = fake.metric("vllm:request_success", finished_reason="abort")
    payload = {"model": "slow-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                      timeout=30) as response:
        lines = response.iter_lines()
        while not _carries_text(next(lines)):
            pass  # the first event only names the role (empty content): no token read yet
    # The client is gone after the first token; the engine must see its request aborted.
    assert _wait(lambda: fake.metric("vllm:request_success", finished_reason="abort") == aborted + 1)
    [row] = portal.usage_rows(user, count=1)
    assert (row.status, row.error_code) == (499, "client_disconnected")
    assert row.completion_tokens >= 1 and row.ttft_ms is not None  # charged for what it read


def test_a_clean_stop_writes_every_pending_usage_row(portal, tmp_path):
    from gateway.models import UsageRecord

    user, raw = portal.member()
    # Batches every minute: the rows are still in memory when the stop comes.
    server = _daphne(subprocess_env(PORTAL_USAGE_FLUSH_S="60"), tmp_path)
    try:
        payload = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        for _ in range(7):
            assert httpx.post(f"{server.url}/v1/chat/completions", headers=portal.headers(raw),
                              json=payload).status_code == 200
        with portal.db():
            assert UsageRecord.objects.filter(user=user).count() == 0
    finally:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(20)
    with portal.db():
        assert UsageRecord.objects.filter(user=user, status=200, completion_tokens=2).count() == 7
