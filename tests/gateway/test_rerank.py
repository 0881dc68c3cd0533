"""/rerank passes through to the engine that serves the model: TEI's reranker (a bare list, tokens in
`x-compute-tokens`) and vLLM's pooling models (Cohere-like body with `usage`); the ledger gets the tokens."""
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.fakes.tei_http import count_tokens

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

FAKE_TEI = str(Path(__file__).resolve().parents[1] / "fakes" / "bin" / "text-embeddings-router")
DOCS = ["Cats sleep all day.", "Paris is the capital of France.", "The capital of Spain is Madrid."]


@pytest.fixture(scope="module")
def tei_reranker():
    port = free_port()
    proc = subprocess.Popen([FAKE_TEI, "--model-id", "BAAI/bge-reranker-base", "--served-model-name", "rerank-model",
                             "--hostname", "127.0.0.1", "--port", str(port)],
                            env={**os.environ, "FAKE_TEI_STARTUP_DELAY_S": "0"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "the TEI stand-in exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the TEI stand-in did not become healthy"
            time.sleep(0.05)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_tei_rerank_passes_through_with_its_token_count_in_the_ledger(portal, tei_reranker):
    from servers.models import Server

    with portal.db():
        server = Server.objects.create(node=portal.node, served_model_name="rerank-model", port=tei_reranker,
                                       status=Server.Status.READY)
    user, raw = portal.member()
    query = "the capital of France"
    ranked = httpx.post(f"{portal.url}/rerank", headers=portal.headers(raw),
                        json={"model": "rerank-model", "query": query, "texts": DOCS, "return_text": True})
    assert ranked.status_code == 200, ranked.text
    assert [r["index"] for r in ranked.json()] == [1, 2, 0]
    assert ranked.json()[0]["text"] == DOCS[1] and 0 < ranked.json()[2]["score"] < ranked.json()[0]["score"] < 1
    # TEI's own refusal comes back as it is.
    empty = httpx.post(f"{portal.url}/rerank", headers=portal.headers(raw),
                       json={"model": "rerank-model", "query": query, "texts": []})
    assert empty.status_code == 400 and empty.json() == {"error": "`texts` cannot be empty", "error_type": "Empty"}

    ok, refused = portal.usage_rows(user, count=2)
    assert (ok.endpoint, ok.status, ok.server_id) == ("rerank", 200, server.pk)
    assert ok.prompt_tokens == sum(count_tokens(f"{query} {text}") for text in DOCS)
    assert (refused.status, refused.error_code) == (400, "upstream_400")


def test_vllm_rerank_passes_through_with_its_usage_in_the_ledger(portal):
    user, raw = portal.member()
    headers = portal.headers(raw)
    ranked = httpx.post(f"{portal.url}/rerank", headers=headers,
                        json={"model": "embed-model", "query": "the capital of France", "documents": DOCS})
    assert ranked.status_code == 200, ranked.text
    body = ranked.json()
    assert body["id"].startswith("rerank-") and body["model"] == "embed-model"
    assert [r["index"] for r in body["results"]] == [1, 2, 0]
    assert body["results"][0]["document"]["text"] == DOCS[1] and body["results"][0]["relevance_score"] > 0
    top = httpx.post(f"{portal.url}/v1/rerank", headers=headers,
                     json={"model": "embed-model", "query": "Madrid", "documents": DOCS, "top_n": 1})
    assert [r["index"] for r in top.json()["results"]] == [2]

    rows = portal.usage_rows(user, count=2)
    assert [(r.endpoint, r.status, r.server_id) for r in rows] == [
        ("rerank", 200, portal.servers["embed-model"].pk)] * 2
    assert (rows[0].prompt_tokens, rows[0].completion_tokens) == (body["usage"]["prompt_tokens"], 0)
    assert rows[1].prompt_tokens == top.json()["usage"]["total_tokens"] > 0
