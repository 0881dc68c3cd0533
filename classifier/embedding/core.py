"""The parts of the embedders that need neither Django nor a model library (the GPU benchmark imports
this module on a machine that has only PyTorch and transformers)."""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EmbedderSpec:
    key: str
    backend: str
    model: str = ""
    url: str = ""
    api_key: str = ""
    query_prefix: str = ""
    passage_prefix: str = ""
    # Classification's prompt for both documents and labels; None: the family's (embedding.prompts).
    classify_prefix: str | None = None
    max_tokens: int = 256
    batch_size: int = 64
    device: str = "auto"
    extra: dict = field(default_factory=dict, hash=False, compare=False)


def cut_chars(text: str, max_tokens: int) -> str:
    """Cut before tokenizing: prose averages 3-5 characters per token in these models' tokenizers, so
    6 characters per token of the window keeps what the window can hold while sparing the tokenizer
    most of a 4 KB excerpt it would throw away (perf/classifier.py measures top-1 agreement)."""
    return text[: max_tokens * 6]


# Kinds of text: a file or a taxonomy label, for classification (`document`, `label`: one symmetric
# prompt) or for retrieval (`query`, `passage`: the model's asymmetric pair).
LABEL_KINDS = frozenset({"label", "passage"})


def prefix_for(spec: EmbedderSpec, kind: str) -> str:
    if kind in ("document", "label"):
        from classifier.embedding.prompts import classify_prefix

        return classify_prefix(key=spec.key, model=spec.model, query_prefix=spec.query_prefix,
                               configured=spec.classify_prefix)
    return spec.query_prefix if kind == "query" else spec.passage_prefix


class Embedder:
    spec: EmbedderSpec
    # Files a job gives it per call when more than PORTAL_CLASSIFIER_BATCH (an in-process GPU embedder); 0: that.
    job_batch: int = 0

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        """kind: "document" / "label" (classification), "query" / "passage" (retrieval)."""
        raise NotImplementedError

    def prefixed(self, texts: list[str], kind: str) -> list[str]:
        prefix = prefix_for(self.spec, kind)
        return [prefix + cut_chars(t, self.spec.max_tokens) for t in texts]


def padded(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows as one (ids, attention mask) pair, padded to the longest row."""
    width = max(len(row) for row in rows)
    matrix = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        matrix[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return matrix, mask


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
