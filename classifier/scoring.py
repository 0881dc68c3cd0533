"""Scores of documents against the classes of one depth: label similarity along the whole path, combined
with the similarity to labeled examples of each class. Pure numpy: the pipeline, the evaluation and
perf/classifier_accuracy.py share it.

Why each part (measured with perf/classifier_accuracy.py, recorded in perf/RESULTS.md):
- Centering. Small embedders put every text in a narrow cone, so raw cosines mostly measure "is this
  text", not "is this class". Subtracting a mean document (the mean of the examples' class centroids
  when examples cover most classes, else the mean of the run's documents seen so far, once there are enough)
  from documents and labels alike spreads them out. The labels' own mean on both sides was measured too:
  it helped the topic set and cost the test archive 15 points, so it centers the labels only (below).
- Two centers without examples. Documents are centered by the documents' mean, labels by the labels' own
  mean: they are two kinds of text, each with its own common direction (the labels' mean on both sides
  cost the test archive 15 points; on its own side it costs nothing there).
- Self-training on the run's documents. The documents seen so far are scored; per predicted class, the
  half with the widest margin (top score over the next) joins that class as if labeled, with the same
  count-based weight as examples, and the scores are computed again (two rounds without examples, one with
  them, the probe refit on the union). It teaches a class what its files actually look like, which the
  label alone cannot: zero-shot +7 to +9 points on SIB and +8 at the DBpedia leaves (all documents seen),
  +1 to +4 with 5 or 20 examples per class. A job refits whenever the documents seen have doubled, so
  its first files are scored on less (until the re-scoring at its end): the harness measures it batch by
  batch, as a job runs.
- Whole paths. A class's label score can be averaged with its ancestors' (`path_weight`). The label text
  already names the path ("Agent / Athlete / Cricketer"); on the 3-level DBpedia sample the extra
  average cost 2.5 points at depth 2 and 2 at the leaves, and changed nothing on the test archive, so
  the default is flat (`PATH_WEIGHT = 0`) at every depth.
- Examples. A class with n examples scores a * (cosine to its examples' centroid) + (1 - a) * (label
  score), a = sqrt(n) / (sqrt(n) + EXAMPLE_WEIGHT): a few examples refine the label, many outweigh it.
  A class without examples keeps its label score.
- Linear probe. Once the examples give the center, a ridge regression on their (centered) vectors is fit
  once per scorer, one-vs-rest, pulled towards the prototypes above (label blended with centroid) as its
  prior: W = (X'X + PROBE_RIDGE I)^-1 (X'Y + PROBE_RIDGE g P'), g scaling the prior to the targets. The
  score of a class with examples is the mean of the prototype score and the probe's (`PROBE_SHARE`). A
  centroid only knows its own class; the probe also learns what tells neighbouring classes apart, and
  keeps gaining with more examples where the centroid blend stalls. Scoring stays one (documents x
  dimensions) @ (dimensions x classes) product; the fit is a d x d solve (d = 384 for e5-small).
  Measured against k-nearest-example votes, per-class weights from the examples' spread, logistic
  regression, shrunk LDA and z-scored blends (perf/RESULTS.md).
- Class shares (with examples). Examples are balanced (k per class), a run's files rarely are: the
  balanced scores above spread a big class's files over its neighbours, so with 20 examples per class
  they lost to a plain centroid where one class holds half the files (DBpedia depths 1-2). The scores are
  made probabilities (softmax at a temperature fit by likelihood on the examples, each half scored by a
  scorer of the other half), the run's class shares estimated from its documents by EM (Saerens et al.
  2002; each class starts with PRIOR_PSEUDO documents, so a share moves only on real evidence: fewer
  pseudo-documents cost the leaves with few files each), and log(share * classes) / temperature is added
  to each class's score, in self-training and in scoring: +1 to +2 points on SIB, +5 / +3 at DBpedia
  depths 1 / 2 with 20 examples per class.
- Re-scoring at the end (`rescore_seen`). A job's first files are scored on what its first batch taught;
  at its end the pipeline scores the documents kept for self-training again with the final state and
  updates the files whose top class changed (DBpedia leaves zero-shot +3.3 points).
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

TOP_K = 5
EXAMPLE_WEIGHT = 4.0
PATH_WEIGHT = 0.0
PROBE_RIDGE = 3.0
PROBE_SHARE = 0.5
# A document this close to a labeled example (raw cosine) is that example again, e.g. a corrected file
# seen by the next job: it takes the example's class with a clear lead, whatever the labels say.
DUPLICATE_SIMILARITY = 0.98
DUPLICATE_LEAD = 0.5
# Below this many documents their mean is too noisy to center with (one document minus itself is zero).
MIN_DOCUMENTS_TO_CENTER = 32
# Self-training on the run's documents: per predicted class, its most confident half teaches it (70% once
# class shares are estimated, below: +0 to +1 point with 20 examples per class; with 5, where they are not,
# 70% cost 0.2-0.6); two rounds without examples, one with them (a second cost 0-3 points there). Refit when
# the documents seen have doubled: refits at every quarter of growth cost a GPU node as much time as the
# embedding and, with the re-scoring at a job's end, moved no figure by more than 0.3 points. At most MAX_SEEN
# are kept for it (float32, 384 dimensions: 30 MB).
ADAPT_SHARE = 0.5
ADAPT_SHARE_WITH_PRIOR = 0.7
ADAPT_ROUNDS = 2
ADAPT_ROUNDS_WITH_EXAMPLES = 1
REFIT_GROWTH = 2.0
MAX_SEEN = 20_000
# Class shares with examples: the scores become probabilities at a temperature fit on the examples
# (half of each class's examples scored by a scorer of the other half), the run's class shares are
# estimated from its documents (EM, each class starting from PRIOR_PSEUDO documents of its own), and
# log(share * classes) / temperature is added to each class's score, in self-training and in scoring.
# Only with at least PRIOR_MIN_EXAMPLES per class (median): with 5 per class, halves of 2-3 examples fit the
# temperature poorly (SIB UK / RU -1.4 / -1.2 points, DBpedia depth 2 +3).
PRIOR = True
PRIOR_MIN_EXAMPLES = 10
PRIOR_PSEUDO = 30.0
PRIOR_ROUNDS = 30
TEMPERATURES = np.geomspace(5.0, 200.0, 40)
# A job's first batch: this many files are observed before any is scored (on SIB Russian, 0.767 against
# 0.733 when the first batch held 64).
FIRST_BATCH = 512


def job_batches(total: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of a job's batches over `total` files: a first of FIRST_BATCH files, so that centering and
    self-training start from a sample, then `size` each."""
    bounds = [0, *range(max(size, FIRST_BATCH), total, size), total]
    return [(start, end) for start, end in zip(bounds, bounds[1:], strict=False) if start < end]


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


@dataclass
class ClassSpace:
    """The classes of one depth. `ancestors[i]`: rows of `ancestor_labels` on class i's path above it."""

    labels: np.ndarray
    ancestors: list[list[int]] = field(default_factory=list)
    ancestor_labels: np.ndarray | None = None
    examples: np.ndarray | None = None
    example_class: np.ndarray | None = None

    @property
    def example_counts(self) -> np.ndarray:
        if self.examples is None or not len(self.examples):
            return np.zeros(len(self.labels), dtype=np.int64)
        return np.bincount(self.example_class, minlength=len(self.labels))


class Scorer:
    """Scores batches of documents; `observe` the documents of a run as they come, for centering and for
    learning from the run's own documents (`adapt`)."""

    def __init__(self, space: ClassSpace, *, path_weight: float = PATH_WEIGHT,
                 example_weight: float = EXAMPLE_WEIGHT, center: bool = True, probe: bool = True,
                 adapt: bool = True, prior: bool = True):
        self.space = space
        self.path_weight = path_weight
        self.example_weight = example_weight
        self.center = center
        self.use_probe = probe
        self.adapt = adapt and center
        self.counts = space.example_counts
        self.centroids = _class_means(space.examples, space.example_class, len(space.labels))
        self.doc_sum = np.zeros(space.labels.shape[1], dtype=np.float64)
        self.doc_count = 0
        self.seen: list[np.ndarray] = []
        self.seen_rows = 0
        self.fitted_at = 0
        self.probe = self._fit_probe(space.examples, space.example_class) if probe else None
        self.temperature = self._temperature() if prior and PRIOR else None
        self.bias: np.ndarray | None = None
        self.examples_unit: np.ndarray | None = None  # the examples normalized, for the duplicates check
        # (centroids, counts, probe) with the run's confident documents added; None until there are enough.
        self.adapted: tuple[np.ndarray | None, np.ndarray, np.ndarray | None] | None = None

    def _examples_center(self) -> np.ndarray | None:
        covered = int((self.counts > 0).sum())
        if self.centroids is not None and covered >= max(3, len(self.counts) / 2):
            return self.centroids[self.counts > 0].mean(axis=0)
        return None

    def _fit_probe(self, examples: np.ndarray | None, classes: np.ndarray | None) -> np.ndarray | None:
        """(dimensions x classes) ridge weights, already divided by g so they score on the cosine scale;
        None without examples, uncentered (raw cosines of one narrow cone make its targets meaningless:
        measured near 0 on DBpedia depth 2) or while the center is still the documents' (it moves batch by
        batch)."""
        mu = self._examples_center() if self.center else None
        if mu is None or examples is None or not len(examples):
            return None
        counts = np.bincount(classes, minlength=len(self.counts))
        centroids = _class_means(examples, classes, len(self.counts))
        x = _centered(examples, mu)
        share = (np.sqrt(counts) / (np.sqrt(counts) + self.example_weight))[:, None]
        prior = normalize((1 - share) * _centered(self.space.labels, mu) + share * _centered(centroids, mu))
        g = 1.0 / max(float(np.mean(np.sum(x * prior[classes], axis=1))), 1e-3)
        gram = (x.T @ x).astype(np.float64) + PROBE_RIDGE * np.eye(x.shape[1])
        # X'Y with one-hot targets Y is each class's sum of its vectors (no documents x classes matrix).
        weights = np.linalg.solve(gram, _class_sums(x, classes, len(counts)).T + PROBE_RIDGE * g * prior.T)
        return (weights / g).astype(np.float32)

    def _temperature(self) -> float | None:
        """The scale that turns scores into class probabilities (softmax), fit by likelihood on the examples:
        each half of every class's examples is scored by a scorer fit on the other half. None without
        enough examples (two for at least half the classes) or without centering."""
        space = self.space
        if (not self.adapt or space.examples is None or int((self.counts >= 2).sum()) < max(2, len(self.counts) / 2)
                or np.median(self.counts[self.counts > 0]) < PRIOR_MIN_EXAMPLES):
            return None
        fold = np.zeros(len(space.example_class), dtype=bool)
        for c in np.unique(space.example_class):
            fold[np.where(space.example_class == c)[0][::2]] = True
        scores, truth = [], []
        for held in (fold, ~fold):
            known = ~held & (self.counts[space.example_class] >= 2)
            part = ClassSpace(labels=space.labels, ancestors=space.ancestors, ancestor_labels=space.ancestor_labels,
                              examples=space.examples[known], example_class=space.example_class[known])
            scorer = Scorer(part, path_weight=self.path_weight, example_weight=self.example_weight,
                            probe=self.use_probe, adapt=False, prior=False)
            scores.append(scorer._blend(_centered(space.examples[held], scorer.mean()), scorer.mean(),
                                        scorer.centroids, scorer.counts, scorer.probe))
            truth.append(space.example_class[held])
        scores, truth = np.vstack(scores), np.concatenate(truth)
        rows = np.arange(len(truth))
        best, temperature = -np.inf, None
        for t in TEMPERATURES:
            z = t * (scores - scores.max(axis=1, keepdims=True))
            likelihood = float((z[rows, truth] - np.log(np.exp(z).sum(axis=1))).mean())
            if likelihood > best:
                best, temperature = likelihood, float(t)
        return temperature

    def _prior_bias(self, scores: np.ndarray) -> np.ndarray:
        """log(estimated share * classes) / temperature per class, from the scores of the run's documents (EM
        of the class shares, Saerens et al. 2002, each class starting with PRIOR_PSEUDO documents)."""
        z = np.exp(np.float32(self.temperature) * (scores - scores.max(axis=1, keepdims=True)))
        z /= z.sum(axis=1, keepdims=True)
        n = scores.shape[1]
        share = np.full(n, 1.0 / n)
        for _ in range(PRIOR_ROUNDS):
            p = z * share.astype(np.float32)
            p /= p.sum(axis=1, keepdims=True)
            before, share = share, (p.sum(axis=0, dtype=np.float64) + PRIOR_PSEUDO) / (len(p) + PRIOR_PSEUDO * n)
            if np.abs(share - before).max() < 1e-4 / n:
                break
        return (np.log(share * n) / self.temperature).astype(np.float32)

    def observe(self, documents: np.ndarray) -> None:
        self.doc_sum += documents.sum(axis=0)
        self.doc_count += len(documents)
        if self.adapt and self.seen_rows < MAX_SEEN:
            kept = np.asarray(documents[: MAX_SEEN - self.seen_rows], dtype=np.float32)
            self.seen.append(kept)
            self.seen_rows += len(kept)

    def mean(self) -> np.ndarray | None:
        """What is subtracted: the examples' balanced mean, else the documents' (or nothing yet)."""
        if not self.center:
            return None
        examples_mean = self._examples_center()
        if examples_mean is not None:
            return examples_mean
        if self.doc_count >= MIN_DOCUMENTS_TO_CENTER:
            return (self.doc_sum / self.doc_count).astype(np.float32)
        return None

    def _label_center(self, mu: np.ndarray | None) -> np.ndarray | None:
        """Labels are centered by the examples' center when there is one; else, while documents center
        documents, by the labels' own mean: labels and files are two kinds of text, each with its own
        common direction (measured against the documents' mean on both sides: +0.2 / +0.8 / -0.7 on SIB,
        -1.5 / -2.7 / +3.2 at DBpedia depths 1 / 2 / 3, +3.7 at the test archive's depth 2)."""
        if mu is None or self._examples_center() is not None:
            return mu
        return self.space.labels.mean(axis=0)

    def _label_weights(self, mu: np.ndarray | None) -> np.ndarray:
        """(dimensions x classes): a document's label score is its product with a column (the class's centered
        label, or with a path weight that mixed with the mean of its ancestors' labels)."""
        center = self._label_center(mu)
        own = _centered(self.space.labels, center).T
        if not self.path_weight or self.space.ancestor_labels is None or not any(self.space.ancestors):
            return own
        above = _centered(self.space.ancestor_labels, center).T
        path = own.copy()
        for i, rows in enumerate(self.space.ancestors):
            if rows:
                path[:, i] = (1 - self.path_weight) * own[:, i] + self.path_weight * above[:, rows].mean(axis=1)
        return path

    def _weights(self, mu: np.ndarray | None, centroids: np.ndarray | None, counts: np.ndarray,
                 probe: np.ndarray | None) -> np.ndarray:
        """(dimensions x classes): every part of a class's score (label, examples' centroid, probe) is a product
        with the centered document, so their blend is one product with the blend of their columns: one matrix
        product per batch instead of three and the elementwise mixing of documents x classes arrays."""
        weights = self._label_weights(mu)
        if centroids is None:
            return weights
        share = (np.sqrt(counts) / (np.sqrt(counts) + self.example_weight)).astype(np.float32)
        weights = (1 - share) * weights + share * _centered(centroids, mu).T
        if probe is not None:
            mix = np.where(counts > 0, np.float32(PROBE_SHARE), np.float32(0.0))
            weights = (1 - mix) * weights + mix * probe
        return weights.astype(np.float32)

    def label_scores(self, docs: np.ndarray, mu: np.ndarray | None) -> np.ndarray:
        return docs @ self._label_weights(mu)

    def _blend(self, docs: np.ndarray, mu: np.ndarray | None, centroids: np.ndarray | None, counts: np.ndarray,
               probe: np.ndarray | None) -> np.ndarray:
        return docs @ self._weights(mu, centroids, counts, probe)

    def _refit(self, mu: np.ndarray) -> None:
        """Self-training: the most confident share of each class's documents so far (by the margin of its
        top score over the next) join the examples of that class; centroids and probe are fit again."""
        seen = np.vstack(self.seen)
        docs = _centered(seen, mu)
        centroids, counts, probe = self.centroids, self.counts, self.probe
        taught = self.space.examples is not None and len(self.space.examples) > 0
        for _ in range(ADAPT_ROUNDS_WITH_EXAMPLES if taught else ADAPT_ROUNDS):
            scores = self._blend(docs, mu, centroids, counts, probe)
            if self.bias is not None:
                scores += self.bias
            picked, classes = _confident(scores, ADAPT_SHARE if self.temperature is None else ADAPT_SHARE_WITH_PRIOR)
            examples, example_class = seen[picked], classes
            if taught:
                examples = np.vstack([self.space.examples, examples])
                example_class = np.concatenate([self.space.example_class, example_class])
            counts = np.bincount(example_class, minlength=len(self.counts))
            centroids = _class_means(examples, example_class, len(self.counts))
            probe = self._fit_probe(examples, example_class) if self.use_probe else None
        self.adapted = (centroids, counts, probe)
        self.fitted_at = self.seen_rows
        if self.temperature is not None:
            self.bias = self._prior_bias(self._blend(docs, mu, centroids, counts, probe))

    def scores(self, documents: np.ndarray) -> np.ndarray:
        """(documents x classes) scores; higher is better."""
        mu = self.mean()
        docs = _centered(documents, mu)
        if (self.adapt and mu is not None and self.seen_rows >= MIN_DOCUMENTS_TO_CENTER
                and self.seen_rows >= self.fitted_at * REFIT_GROWTH and self.seen_rows > self.fitted_at):
            self._refit(mu)
        centroids, counts, probe = self.adapted or (self.centroids, self.counts, self.probe)
        scores = self._blend(docs, mu, centroids, counts, probe)
        if self.bias is not None:
            scores += self.bias
        if self.centroids is not None:
            self._known_documents(documents, scores)
        return scores

    def rescore_seen(self) -> np.ndarray | None:
        """Scores of the documents kept for self-training (the run's first MAX_SEEN, in the order observed),
        with what the run has learned from all of them: a job re-scores its early files at its end, which
        were scored on the first batch alone. None when nothing was kept (no self-training)."""
        mu = self.mean()
        if not self.seen_rows or mu is None or not self.adapt:
            return None
        if self.seen_rows >= MIN_DOCUMENTS_TO_CENTER and self.seen_rows > self.fitted_at:
            self._refit(mu)
        return self.scores(np.vstack(self.seen))

    def _known_documents(self, documents: np.ndarray, scores: np.ndarray) -> None:
        if self.examples_unit is None:
            self.examples_unit = normalize(self.space.examples)
        similarity = normalize(documents) @ self.examples_unit.T
        nearest = similarity.argmax(axis=1)
        for d in np.where(similarity[np.arange(len(documents)), nearest] >= DUPLICATE_SIMILARITY)[0]:
            scores[d, self.space.example_class[nearest[d]]] = scores[d].max() + DUPLICATE_LEAD

    def top(self, documents: np.ndarray, k: int = TOP_K) -> list[list[tuple[int, float]]]:
        """Per document, the best k (class row, score), best first."""
        return top_of(self.scores(documents), k)


def top_of(scores: np.ndarray, k: int = TOP_K) -> list[list[tuple[int, float]]]:
    """Per row of scores, the best k (class row, score), best first."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:  # the best k of each row first (linear), then only those sorted
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        rows = np.take_along_axis(part, order, axis=1)
    else:
        rows = np.argsort(-scores, axis=1, kind="stable")
    best = np.take_along_axis(scores, rows, axis=1).astype(np.float64)
    return [list(zip(r, v, strict=True)) for r, v in zip(rows.tolist(), best.tolist(), strict=True)]


def _class_sums(vectors: np.ndarray, classes: np.ndarray, n: int) -> np.ndarray:
    """(n x dimensions) float64 sums of each class's vectors, as a sparse one-hot product: np.add.at took half
    of a job's scoring time on a GPU node, sorted reduceat still a fifth (perf/classifier.py)."""
    one_hot = sparse.csr_matrix((np.ones(len(classes), dtype=np.float32), (classes, np.arange(len(classes)))),
                                shape=(n, len(classes)))
    return np.asarray(one_hot @ np.asarray(vectors, dtype=np.float32), dtype=np.float64)


def _class_means(vectors: np.ndarray | None, classes: np.ndarray | None, n: int) -> np.ndarray | None:
    if vectors is None or not len(vectors):
        return None
    sums = _class_sums(vectors, classes, n)
    return (sums / np.maximum(np.bincount(classes, minlength=n), 1)[:, None]).astype(np.float32)


def _confident(scores: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, their top class): per predicted class, the `share` of its documents with the widest margin."""
    top = scores.argmax(axis=1)
    ordered = np.sort(scores, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if scores.shape[1] > 1 else np.ones(len(scores))
    rows = []
    for c in np.unique(top):
        members = np.where(top == c)[0]
        rows.append(members[margin[members] >= np.quantile(margin[members], 1 - share)])
    picked = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return picked, top[picked]


def _centered(vectors: np.ndarray, mu: np.ndarray | None) -> np.ndarray:
    return normalize(vectors - mu) if mu is not None else normalize(vectors)
