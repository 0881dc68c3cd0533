"""Vectors of taxonomy labels, saved under VAR_DIR, and the classes of one depth scored against files.

Labels are embedded once per (taxonomy version, embedder) with the classification prompt; the classes of
one depth are the subset of those vectors for the nodes that are classes at that depth.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier import scoring
from classifier.embedding import embedders
from classifier.embedding.core import prefix_for
from classifier.models import TaxonomyNode, TaxonomyVersion
from classifier.taxonomy.examples import ExampleSet, example_vectors

TOP_K = scoring.TOP_K


def index_dir() -> Path:
    path = Path(settings.VAR_DIR) / "classifier" / "index"
    path.mkdir(parents=True, exist_ok=True)
    return path


def classes_at_depth(nodes: list[TaxonomyNode], depth: int) -> list[TaxonomyNode]:
    """Nodes at `depth`, plus shallower nodes that have no children (they end their branch early)."""
    parents = {n.parent_id for n in nodes if n.parent_id}
    return [n for n in nodes if n.depth == depth or (n.depth < depth and n.pk not in parents)]


def label_texts(nodes: list[TaxonomyNode]) -> list[str]:
    """Flattened labels; a node that has children also lists them with their descriptions: at depth 2,
    "Expenses" alone says little, "Utilities (electricity, water, gas...)" says what it covers."""
    children: dict[int, list[str]] = {}
    for n in nodes:
        if n.parent_id:
            children.setdefault(n.parent_id, []).append(f"{n.name} ({n.description})" if n.description else n.name)
    texts = []
    for n in nodes:
        text = n.flat_text()
        if n.pk in children:
            text += ". Includes: " + "; ".join(children[n.pk])
        texts.append(text)
    return texts


def _digest(nodes: list[TaxonomyNode], texts: list[str], embedder_key: str) -> str:
    """Files are named by what they contain (labels, node ids, embedder settings), never reused stale."""
    spec = embedders.get_spec(embedder_key)
    material = json.dumps([embedder_key, spec.backend, spec.model, prefix_for(spec, "label"), spec.max_tokens,
                           [n.pk for n in nodes], texts], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def _paths(version: TaxonomyVersion, embedder_key: str) -> tuple[Path, Path, list[TaxonomyNode], list[str]]:
    nodes = list(version.nodes.order_by("position"))
    texts = label_texts(nodes)
    base = index_dir() / f"v{version.pk}-{embedder_key}-{_digest(nodes, texts, embedder_key)}"
    return base.with_suffix(".npy"), base.with_suffix(".ids.npy"), nodes, texts


def node_vectors(version: TaxonomyVersion, embedder_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, vectors) for every node of the version; computed once and saved."""
    vec_path, ids_path, nodes, texts = _paths(version, embedder_key)
    if vec_path.exists() and ids_path.exists():
        return np.load(ids_path), np.load(vec_path)
    vectors = embedders.load(embedder_key).embed(texts, kind="label")
    ids = np.array([n.pk for n in nodes], dtype=np.int64)
    tmp = vec_path.with_suffix(".tmp.npy")
    np.save(ids_path, ids)
    np.save(tmp, vectors.astype(np.float32))
    tmp.replace(vec_path)
    return ids, vectors


def own_texts(nodes: list[TaxonomyNode]) -> list[str]:
    """A node alone (no code, no path): what lint compares between siblings, who share their path."""
    return [f"{n.name} — {n.description}" if n.description else n.name for n in nodes]


def own_vectors(version: TaxonomyVersion, embedder_key: str, *, compute: bool = True
                ) -> tuple[np.ndarray, np.ndarray] | None:
    nodes = list(version.nodes.order_by("position"))
    texts = own_texts(nodes)
    base = index_dir() / f"v{version.pk}-{embedder_key}-own-{_digest(nodes, texts, embedder_key)}"
    vec_path, ids_path = base.with_suffix(".npy"), base.with_suffix(".ids.npy")
    if vec_path.exists() and ids_path.exists():
        return np.load(ids_path), np.load(vec_path)
    if not compute:
        return None
    vectors = embedders.load(embedder_key).embed(texts, kind="label")
    ids = np.array([n.pk for n in nodes], dtype=np.int64)
    np.save(ids_path, ids)
    tmp = vec_path.with_suffix(".tmp.npy")
    np.save(tmp, vectors.astype(np.float32))
    tmp.replace(vec_path)
    return ids, vectors


class LabelIndex:
    """The classes of one depth, scored by label along the whole path and by labeled examples
    (classifier.scoring). The scores combine several similarities per class, so they are computed with
    numpy over the saved vectors rather than read from one inner-product index."""

    def __init__(self, version: TaxonomyVersion, embedder_key: str, depth: int, *,
                 examples: "ExampleSet | None" = None, center: bool = True):
        nodes = list(version.nodes.order_by("position"))
        self.nodes = classes_at_depth(nodes, depth)
        ids, vectors = node_vectors(version, embedder_key)
        row = {int(node_id): i for i, node_id in enumerate(ids)}
        space = scoring.ClassSpace(labels=vectors[[row[n.pk] for n in self.nodes]],
                                   ancestors=_ancestor_rows(nodes, self.nodes, row), ancestor_labels=vectors)
        if examples is not None and examples.codes:
            space.examples, space.example_class = _example_rows(self.nodes, examples, embedder_key)
        self.scorer = scoring.Scorer(space, center=center)

    def search(self, vectors: np.ndarray, k: int = TOP_K) -> list[list[tuple[TaxonomyNode, float]]]:
        """Top k classes per document; the documents count towards the mean that centers later batches."""
        self.scorer.observe(vectors)
        return self._hits(self.scorer.scores(vectors), k)

    def rescore(self, k: int = TOP_K) -> list[list[tuple[TaxonomyNode, float]]]:
        """Top k classes again for the documents searched so far (the first scoring.MAX_SEEN, in order), with
        what the run learned from all of them; [] when the scorer keeps none (no self-training)."""
        scores = self.scorer.rescore_seen()
        return [] if scores is None else self._hits(scores, k)

    def _hits(self, scores: np.ndarray, k: int) -> list[list[tuple[TaxonomyNode, float]]]:
        return [[(self.nodes[r], s) for r, s in hits] for hits in scoring.top_of(scores, k)]


def _ancestor_rows(nodes: list[TaxonomyNode], classes: list[TaxonomyNode], row: dict[int, int]) -> list[list[int]]:
    parent = {n.pk: n.parent_id for n in nodes}
    out = []
    for node in classes:
        chain, up = [], parent.get(node.pk)
        while up is not None:
            chain.append(row[up])
            up = parent.get(up)
        out.append(chain)
    return out


def _example_rows(classes: list[TaxonomyNode], examples: "ExampleSet", embedder_key: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the examples that fall under a class (their code is the class's or below it)."""
    vectors = example_vectors(examples, embedder_key)
    by_code = {n.code: i for i, n in enumerate(classes)}
    picked, rows = [], []
    for i, code in enumerate(examples.codes):
        parts = code.split(".")
        match = next((by_code[".".join(parts[:d])] for d in range(len(parts), 0, -1)
                      if ".".join(parts[:d]) in by_code), None)
        if match is not None:
            picked.append(i)
            rows.append(match)
    return vectors[picked], np.array(rows, dtype=np.int64)
