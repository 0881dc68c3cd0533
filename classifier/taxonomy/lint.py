"""The pre-deploy checklist of the field notes, run on a taxonomy version before use."""
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from classifier.models import TaxonomyVersion
from classifier.taxonomy import label_index

# Cosine after centering the taxonomy's vectors: small embedders put every text in a narrow cone
# (raw cosines of unrelated labels sit near 0.9), centering spreads them so one threshold works.
DEFAULT_SIMILARITY = 0.55


@dataclass
class Finding:
    kind: str           # duplicate_label | empty_subtree | near_duplicate | missing_description | not_indexed
    codes: list[str]
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def lint(version: TaxonomyVersion, *, embedder_key: str | None = None,
         similarity: float = DEFAULT_SIMILARITY) -> list[Finding]:
    nodes = list(version.nodes.order_by("position"))
    by_id = {n.pk: n for n in nodes}
    has_children = {n.parent_id for n in nodes if n.parent_id}
    max_depth = max((n.depth for n in nodes), default=1)
    findings: list[Finding] = []

    names: dict[str, list] = defaultdict(list)
    for n in nodes:
        names[n.name.strip().casefold()].append(n)
    for same in names.values():
        branches = {n.parent_id for n in same}
        if len(same) > 1 and len(branches) > 1:
            where = "; ".join(f"{n.code} {n.label_path}" for n in same)
            findings.append(Finding("duplicate_label", [n.code for n in same],
                                    f"'{same[0].name}' appears in {len(same)} branches ({where}): merge them or "
                                    "rename one so that a document has one right answer."))

    for n in nodes:
        if n.depth < max_depth and n.pk not in has_children:
            findings.append(Finding("empty_subtree", [n.code],
                                    f"{n.code} {n.label_path} has no children while other branches go "
                                    f"{max_depth} levels deep: remove it or merge it into a related branch."))
        if n.pk not in has_children and not n.description.strip():
            findings.append(Finding("missing_description", [n.code],
                                    f"{n.code} {n.label_path} is a leaf without a description: add one (what "
                                    "documents belong here) so the embedding has more than a name to match."))

    if embedder_key:
        saved = label_index.own_vectors(version, embedder_key, compute=False)
        if saved is None:
            findings.append(Finding("not_indexed", [], f"Labels are not embedded with {embedder_key} yet: build the "
                                    "index (Lint with embeddings) to check near-duplicate siblings."))
        else:
            ids, vectors = saved
            vectors = vectors - vectors.mean(axis=0)
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            row = {int(i): k for k, i in enumerate(ids)}
            siblings: dict[int | None, list] = defaultdict(list)
            for n in nodes:
                if n.pk in row:
                    siblings[n.parent_id].append(n)
            for group in siblings.values():
                for i, a in enumerate(group):
                    for b in group[i + 1:]:
                        sim = float(np.dot(vectors[row[a.pk]], vectors[row[b.pk]]))
                        if sim >= similarity:
                            parent = by_id.get(a.parent_id)
                            findings.append(Finding(
                                "near_duplicate", [a.code, b.code],
                                f"{a.code} {a.name} and {b.code} {b.name} (siblings"
                                f"{' under ' + parent.code if parent else ''}) are {sim:.2f} similar: merge them or "
                                "make their descriptions say how they differ."))
    return findings
