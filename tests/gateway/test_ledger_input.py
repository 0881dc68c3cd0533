"""Bad input never reaches the ledger, and a row the database refuses cannot stall the writer."""
import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest

from gateway.models import UsageRecord
from gateway.usage.ledger import Ledger

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.mark.parametrize("model", ["chat\x00model", "chat-model\n", "a\x1bb", "x" * 201])
def test_control_characters_or_a_huge_model_name_are_a_400(portal, model):
    user, raw = portal.member()
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_model_name", "model")
    assert "printable characters" in error["message"]
    [row] = portal.usage_rows(user, count=1)
    assert (row.status, row.model) == (400, "")
    # The writer goes on: the next request's row lands too.
    ok = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                    json={"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert ok.status_code == 200
    assert len(portal.usage_rows(user, count=2)) == 2


def _row(user, **changes) -> dict:
    return {"user_id": user.pk, "username": user.username, "api_key_id": None, "key_prefix": "", "model": "m",
            "server_id": None, "endpoint": "chat/completions", "stream": False, "status": 200, "error_code": "",
            "prompt_tokens": 1, "completion_tokens": 1, "ttft_ms": 1.0, "duration_ms": 2.0, "client_ip": None,
            "created_at": datetime.now(UTC), **changes}


def test_a_batch_with_a_row_the_database_refuses_writes_the_others_and_logs_it(member_user, settings, caplog):
    settings.PORTAL_USAGE_FLUSH_S = 0.01
    ledger = Ledger()
    bad = [_row(member_user, status="not a number"), _row(member_user, model="nul\x00here")]

    async def write() -> None:
        for row in [_row(member_user, model="first"), *bad, _row(member_user, model="last")]:
            ledger.add(row)
        await asyncio.wait_for(ledger._task, timeout=10)  # ends only once every row is written or dropped

    with caplog.at_level(logging.ERROR, logger="gateway.usage.ledger"):
        asyncio.run(write())
    assert ledger.rows == []
    assert {"first", "last"} <= set(UsageRecord.objects.values_list("model", flat=True))
    assert "dropped a usage row the database refused" in caplog.text and "not a number" in caplog.text
