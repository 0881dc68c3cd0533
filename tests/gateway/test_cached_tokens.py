"""Cached prompt tokens: the engine reports them (--enable-prompt-tokens-details), the ledger keeps them apart,
and on a scripted workload its cached share agrees with the engine's own prefix-cache hit rate."""
import random
from decimal import Decimal

import httpx
import pytest

from gateway.usage import cost
from tests.gateway.conftest import FakeVllm

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

MODEL = "cache-model"


@pytest.fixture(scope="module")
def cache_fake():
    fake = FakeVllm(MODEL, "--enable-prompt-tokens-details")
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.close()


@pytest.fixture
def cache_server(portal, cache_fake):
    from servers.models import Server

    with portal.db():
        return Server.objects.create(node=portal.node, served_model_name=MODEL, port=cache_fake.port,
                                     status=Server.Status.READY)


def _workload(seed: int = 7) -> list[tuple[str, str, bool]]:
    """Five long shared documents, six questions each, in a shuffled order; a third of them streamed."""
    rng = random.Random(seed)
    docs = [" ".join(f"clause{d}-{w} of the agreement number {d}" for w in range(60)) for d in range(5)]
    jobs = [(doc, f"question {q} about part {rng.randint(1, 99)}?", rng.random() < 0.33)
            for doc in docs for q in range(6)]
    rng.shuffle(jobs)
    return jobs


def test_the_ledgers_cached_share_matches_the_engines_hit_rate(portal, cache_fake, cache_server):
    user, raw = portal.member()
    queries = cache_fake.metric("vllm:prefix_cache_queries")
    hits = cache_fake.metric("vllm:prefix_cache_hits")
    jobs = _workload()
    for doc, question, stream in jobs:
        payload = {"model": MODEL, "max_tokens": 4, "stream": stream,
                   "messages": [{"role": "system", "content": doc}, {"role": "user", "content": question}]}
        if stream:
            with httpx.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                              timeout=30) as response:
                assert response.status_code == 200
                for _line in response.iter_lines():
                    pass
        else:
            response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                                  timeout=30)
            assert response.status_code == 200
    engine_rate = (cache_fake.metric("vllm:prefix_cache_hits") - hits) / (
        cache_fake.metric("vllm:prefix_cache_queries") - queries)
    rows = portal.usage_rows(user, count=len(jobs))
    assert len(rows) == len(jobs)
    ledger_share = sum(r.cached_tokens for r in rows) / sum(r.prompt_tokens for r in rows)
    assert engine_rate > 0.5  # the workload does reuse its documents
    assert abs(ledger_share - engine_rate) < 0.03, (ledger_share, engine_rate)
    # Streamed answers carry their cached tokens too.
    assert any(r.stream and r.cached_tokens for r in rows) and any(not r.stream and r.cached_tokens for r in rows)
    assert all(r.cached_tokens <= r.prompt_tokens for r in rows)


def test_a_first_prompt_has_nothing_cached_and_engines_without_the_flag_report_none(portal, cache_server):
    """As vLLM 0.26 answers: details with cached_tokens 0 on a first prompt, null without the flag."""
    user, raw = portal.member()
    payload = {"model": "chat-model", "max_tokens": 2,
               "messages": [{"role": "user", "content": " ".join(["same long prompt"] * 40)}]}
    for _ in range(2):  # the shared fake runs without --enable-prompt-tokens-details: null details
        assert httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload,
                          timeout=30).status_code == 200
    fresh = {**payload, "model": MODEL,
             "messages": [{"role": "user", "content": " ".join(["a prompt never sent before"] * 40)}]}
    answer = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=fresh, timeout=30)
    assert answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    rows = portal.usage_rows(user, count=3)
    assert [r.cached_tokens for r in rows] == [0, 0, 0]


def test_cached_tokens_are_priced_at_the_cached_price():
    # 2M prompt tokens of which 1.5M cached, 1M completion, on GPT-5's table: 0.5 x 3 + 1.5 x 0.30 + 1 x 15.
    assert cost.api_cost(prompt_tokens=2_000_000, completion_tokens=1_000_000, cached_tokens=1_500_000,
                         input_per_million=Decimal(3), output_per_million=Decimal(15),
                         cached_input_per_million=Decimal("0.30")) == Decimal("16.95")
    # No cached price: cached tokens cost what input costs.
    assert cost.api_cost(prompt_tokens=2_000_000, completion_tokens=0, cached_tokens=1_500_000,
                         input_per_million=Decimal(3), output_per_million=Decimal(15)) == Decimal(6)


def test_the_cost_page_and_the_csv_show_cached_tokens(portal, cache_server, client):
    user, raw = portal.member()
    payload = {"model": MODEL, "max_tokens": 2,
               "messages": [{"role": "user", "content": " ".join(["reused context"] * 60)}]}
    for _ in range(2):
        httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json=payload, timeout=30)
    rows = portal.usage_rows(user, count=2)
    cached = rows[1].cached_tokens
    assert cached > 0
    with portal.db():
        client.force_login(user)
        page = client.get("/usage/cost/").content.decode()
        csv = client.get("/usage/export.csv").content.decode()
        usage = client.get("/usage/").content.decode()
    assert "of them cached" in page and f"<td>{cached}</td>" in page
    header = csv.splitlines()[0].split(",")
    assert "cached_tokens" in header
    assert f"({cached} cached)" in usage


def test_an_admin_sets_a_cached_price_and_a_negative_one_says_what_to_fix(client, admin_user, member_user):
    from gateway.models import ApiPrice
    from gateway.usage import services

    services.cost_settings_ensure()
    gpt5 = ApiPrice.objects.get(name="GPT-5")
    assert gpt5.cached_input_per_million == Decimal("0.30")  # seeded with the vendor's cached rate
    client.force_login(member_user)
    assert client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "GPT-5", "input_per_million": "3",
                                                           "output_per_million": "15",
                                                           "cached_input_per_million": "0"}).status_code == 403
    client.force_login(admin_user)
    bad = client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "GPT-5", "input_per_million": "3",
                                                          "output_per_million": "15", "cached_input_per_million": "-1"})
    assert bad.status_code == 400 and "Cached input price" in bad.content.decode()
    assert client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "GPT-5", "input_per_million": "3",
                                                           "output_per_million": "15",
                                                           "cached_input_per_million": "0.5"}).status_code == 302
    assert ApiPrice.objects.get(pk=gpt5.pk).cached_input_per_million == Decimal("0.5")
    assert 'value="0.5"' in client.get("/usage/cost/").content.decode()
