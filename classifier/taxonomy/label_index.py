"""FAISS indexes of taxonomy labels: inner product on L2-normalized vectors (cosine), saved under VAR_DIR.

Labels are embedded once per (taxonomy version, embedder); the index of one classification depth is the
subset of those vectors for the nodes that are classes at that depth.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier.embedding import embedders
from classifier.models import TaxonomyNode, TaxonomyVersion

TOP_K = 5


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
    material = json.dumps([embedder_key, spec.backend, spec.model, spec.passage_prefix, spec.max_tokens,
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
    vectors = embedders.load(embedder_key).embed(texts, kind="passage")
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
    vectors = embedders.load(embedder_key).embed(texts, kind="passage")
    ids = np.array([n.pk for n in nodes], dtype=np.int64)
    np.save(ids_path, ids)
    tmp = vec_path.with_suffix(".tmp.npy")
    np.save(tmp, vectors.astype(np.float32))
    tmp.replace(vec_path)
    return ids, vectors


class LabelIndex:
    """The classes of one depth in a FAISS IndexFlatIP, written to disk next to the vectors."""

    def __init__(self, version: TaxonomyVersion, embedder_key: str, depth: int):
        import faiss

        nodes = list(version.nodes.order_by("position"))
        wanted = classes_at_depth(nodes, depth)
        self.nodes = wanted
        vec_path, _ids_path, _nodes, _texts = _paths(version, embedder_key)
        path = vec_path.with_suffix(f".d{depth}.faiss")
        if path.exists():
            self.index = faiss.read_index(str(path))
        else:
            ids, vectors = node_vectors(version, embedder_key)
            row = {int(node_id): i for i, node_id in enumerate(ids)}
            subset = np.ascontiguousarray(vectors[[row[n.pk] for n in wanted]], dtype=np.float32)
            self.index = faiss.IndexFlatIP(subset.shape[1])
            self.index.add(subset)
            tmp = path.with_suffix(".tmp")
            faiss.write_index(self.index, str(tmp))
            tmp.replace(path)

    def search(self, vectors: np.ndarray, k: int = TOP_K) -> list[list[tuple[TaxonomyNode, float]]]:
        k = min(k, len(self.nodes))
        scores, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return [[(self.nodes[r], float(s)) for r, s in zip(rrow, srow, strict=True) if r >= 0]
                for rrow, srow in zip(rows, scores, strict=True)]
