"""Labeled examples of a taxonomy's classes: which ones a run uses, and their vectors.

A run's example set is the version's YAML examples plus the taxonomy's stored examples (labeled CSV rows,
corrections) up to the newest that existed when the run started, so a job can be repeated with the same
set while later corrections improve the next job. Example vectors are saved under VAR_DIR by content.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Max

from classifier.embedding import embedders
from classifier.embedding.core import prefix_for
from classifier.models import LabeledExample, TaxonomyVersion

# Per class, at most this many stored examples are used (the newest): enough for the centroid to settle,
# bounded so a taxonomy with years of corrections does not grow a run's start-up time without end.
MAX_PER_CLASS = 200


@dataclass
class ExampleSet:
    codes: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    last_id: int = 0
    from_yaml: int = 0

    def summary(self) -> dict:
        """What a job records: enough to tell which examples it used and to compare two runs."""
        return {"count": len(self.codes), "yaml": self.from_yaml, "last_id": self.last_id,
                "classes": len(set(self.codes)), "digest": self.digest()}

    def by_code(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for code, text in zip(self.codes, self.texts, strict=True):
            out.setdefault(code, []).append(text)
        return out

    def digest(self) -> str:
        material = json.dumps([self.codes, self.texts], ensure_ascii=False)
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def latest_id(version: TaxonomyVersion) -> int:
    return LabeledExample.objects.filter(taxonomy_id=version.taxonomy_id).aggregate(m=Max("pk"))["m"] or 0


def example_set(version: TaxonomyVersion, *, up_to_id: int | None = None,
                leave_out: frozenset[str] = frozenset()) -> ExampleSet:
    """The examples of `version`'s codes; `leave_out`: texts not to use (an evaluation's own rows)."""
    nodes = list(version.nodes.order_by("position"))
    codes = {n.code for n in nodes}
    found = ExampleSet(last_id=latest_id(version) if up_to_id is None else up_to_id)
    for node in nodes:
        for text in node.examples:
            if text not in leave_out:
                found.codes.append(node.code)
                found.texts.append(text)
    found.from_yaml = len(found.codes)
    per_class: dict[str, int] = {}
    stored = LabeledExample.objects.filter(taxonomy_id=version.taxonomy_id, pk__lte=found.last_id,
                                           code__in=codes).order_by("-pk").values_list("code", "text")
    for code, text in stored:
        if text in leave_out or per_class.get(code, 0) >= MAX_PER_CLASS:
            continue
        per_class[code] = per_class.get(code, 0) + 1
        found.codes.append(code)
        found.texts.append(text)
    return found


def example_vectors(examples: ExampleSet, embedder_key: str) -> np.ndarray:
    """Examples are documents: embedded like files, saved by content so a set is embedded once."""
    spec = embedders.get_spec(embedder_key)
    material = json.dumps([embedder_key, spec.backend, spec.model, prefix_for(spec, "document"), spec.max_tokens,
                           examples.texts], ensure_ascii=False)
    folder = Path(settings.VAR_DIR) / "classifier" / "index"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"examples-{embedder_key}-{hashlib.sha256(material.encode()).hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)
    vectors = embedders.load(embedder_key).embed(examples.texts, kind="document").astype(np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors
