"""The official openai client works unchanged against the portal's /v1, and the ledger records it."""
import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture
def client(portal):
    user, raw = portal.member()
    return user, openai.OpenAI(base_url=f"{portal.url}/v1", api_key=raw, max_retries=0, timeout=30)


def test_it_streams_a_chat_with_the_openai_client_and_records_the_engine_usage(portal, client):
    user, oa = client
    fake = portal.fakes["chat-model"]
    before = fake.metric("vllm:generation_tokens"), fake.metric("vllm:prompt_tokens")
    stream = oa.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "Hello there"}],
                                        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text and usage is not None and chunks[-1].choices == []
    assert chunks[-2].choices[0].finish_reason == "stop"
    after = fake.metric("vllm:generation_tokens"), fake.metric("vllm:prompt_tokens")
    assert usage.completion_tokens == after[0] - before[0]
    assert usage.prompt_tokens == after[1] - before[1]

    [row] = portal.usage_rows(user, count=1)
    assert (row.model, row.endpoint, row.stream, row.status) == ("chat-model", "chat/completions", True, 200)
    assert (row.prompt_tokens, row.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert row.server_id == portal.servers["chat-model"].pk
    assert row.key_prefix and row.api_key_id is not None and row.ttft_ms is not None and row.duration_ms > 0


def test_a_stream_that_did_not_ask_for_usage_gets_none_but_the_ledger_has_it(portal, client):
    user, oa = client
    fake = portal.fakes["chat-model"]
    before = fake.metric("vllm:generation_tokens")
    chunks = list(oa.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "Hi"}],
                                             stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk asked for by the gateway reached the client"
    produced = fake.metric("vllm:generation_tokens") - before
    [row] = portal.usage_rows(user, count=1)
    assert row.completion_tokens == produced > 0 and row.prompt_tokens > 0


def test_non_streamed_chat_completion_and_completion(portal, client):
    user, oa = client
    chat = oa.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert chat.choices[0].message.content and chat.usage.completion_tokens == 5
    assert chat.choices[0].finish_reason == "length"
    completion = oa.completions.create(model="chat-model", prompt="The capital of France is", max_tokens=3)
    assert completion.usage.completion_tokens == 3
    rows = portal.usage_rows(user, count=2)
    assert [(r.endpoint, r.stream, r.completion_tokens, r.prompt_tokens) for r in rows] == [
        ("chat/completions", False, 5, chat.usage.prompt_tokens),
        ("completions", False, 3, completion.usage.prompt_tokens)]


def test_streamed_completion(portal, client):
    _user, oa = client
    chunks = list(oa.completions.create(model="chat-model", prompt="Once upon a time", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_tokenize_and_detokenize_pass_through(portal, client):
    user, oa = client
    result = oa.embeddings.create(model="embed-model", input=["one text", "another text"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16 and result.usage.prompt_tokens > 0
    headers = portal.headers(oa.api_key)
    tokens = httpx.post(f"{portal.url}/tokenize", headers=headers, json={"model": "chat-model", "prompt": "Hello"})
    assert tokens.status_code == 200 and tokens.json()["count"] == len(tokens.json()["tokens"]) > 0
    text = httpx.post(f"{portal.url}/detokenize", headers=headers,
                      json={"model": "chat-model", "tokens": tokens.json()["tokens"]})
    assert text.status_code == 200 and text.json()["prompt"] == "Hello"
    rows = portal.usage_rows(user, count=3)
    assert [r.endpoint for r in rows] == ["embeddings", "tokenize", "detokenize"]
    assert rows[0].prompt_tokens == result.usage.prompt_tokens


def test_models_lists_only_what_the_key_and_the_user_may_use(portal):
    _user, raw = portal.member()
    listed = openai.OpenAI(base_url=f"{portal.url}/v1", api_key=raw, max_retries=0).models.list()
    assert {m.id for m in listed.data} == {"chat-model", "slow-model", "embed-model"}  # stopped-model is not

    _user, scoped = portal.member(scopes=["chat-model"])
    assert [m.id for m in openai.OpenAI(base_url=f"{portal.url}/v1", api_key=scoped).models.list().data] == [
        "chat-model"]

    _user, limited = portal.member(allowed_models=["embed-model", "slow-model"])
    oa = openai.OpenAI(base_url=f"{portal.url}/v1", api_key=limited, max_retries=0)
    assert sorted(m.id for m in oa.models.list().data) == ["embed-model", "slow-model"]
    assert oa.models.retrieve("slow-model").id == "slow-model"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("chat-model")
