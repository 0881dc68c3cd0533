"""Classification prompts per embedder, labeled examples (YAML, CSV, corrections), whole-path scoring."""
import numpy as np
import pytest

from classifier import evaluation, pipeline, rerank, scoring, services
from classifier.embedding import embedders
from classifier.embedding.core import prefix_for
from classifier.models import ClassificationResult, LabeledExample
from classifier.taxonomy import examples, yaml_import
from sparkportal.exceptions import ValidationFailed


@pytest.mark.parametrize(("key", "document", "label"), [
    ("multilingual-e5-small", "query: ", "query: "),  # e5's card: "query: " on both sides for classification
    ("all-minilm-l6-v2", "", ""),
])
def test_each_shipped_embedder_classifies_with_its_symmetric_prompt(key, document, label):
    spec = embedders.get_spec(key)
    assert (prefix_for(spec, "document"), prefix_for(spec, "label")) == (document, label)
    assert prefix_for(spec, "query") == spec.query_prefix and prefix_for(spec, "passage") == spec.passage_prefix


@pytest.mark.parametrize(("conf", "expected"), [
    ({"backend": "tei", "model": "BAAI/bge-m3", "query_prefix": "Represent this sentence: "}, ""),
    ({"backend": "tei", "model": "nomic-ai/nomic-embed-text-v1.5"}, "classification: "),
    ({"backend": "openai", "model": "house-model", "query_prefix": "q: "}, "q: "),
    ({"backend": "tei", "model": "intfloat/e5-large", "classify_prefix": "custom: "}, "custom: "),
])
def test_other_embedders_get_their_family_prompt_or_the_configured_one(settings, conf, expected):
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, "other": conf}
    assert prefix_for(embedders.get_spec("other"), "document") == expected


def test_yaml_examples_in_both_shapes():
    compact = "10 Money:\n  10.01 Bills:\n    description: bills\n    examples: [Gas bill for March]\n"
    explicit = ("- code: '10'\n  name: Money\n  children:\n    - code: '10.01'\n      name: Bills\n"
                "      examples: Gas bill for March\n")
    for text in (compact, explicit):
        assert {n.code: n.examples for n in yaml_import.parse(text)} == {"10": [], "10.01": ["Gas bill for March"]}
    with pytest.raises(ValidationFailed, match="line 3: an example of 10.01 is empty"):
        yaml_import.parse("10 Money:\n  10.01 Bills:\n    examples: ['']\n")


def test_scores_combine_examples_with_the_label_and_the_path():
    labels = scoring.normalize(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    doc = scoring.normalize(np.array([[0.6, 0.55, 0.7]], dtype=np.float32))
    assert scoring.Scorer(scoring.ClassSpace(labels=labels), center=False).top(doc)[0][0][0] == 0
    space = scoring.ClassSpace(labels=labels, examples=scoring.normalize(np.array([[0, 0.5, 1.0]] * 20)),
                               example_class=np.array([1] * 20))
    assert scoring.Scorer(space, center=False).top(doc)[0][0][0] == 1
    # Whole paths: class 1 sits under an ancestor the document matches well.
    space = scoring.ClassSpace(labels=labels, ancestors=[[], [0]], ancestor_labels=scoring.normalize(
        np.array([[0, 0, 1]], dtype=np.float32)))
    assert scoring.Scorer(space, center=False, path_weight=0.5).top(doc)[0][0][0] == 1


def _blobs(rng, centers, per_class, spread=0.35):
    vectors = np.concatenate([c + spread * rng.standard_normal((per_class, len(c))) for c in centers])
    return scoring.normalize(vectors), np.repeat(np.arange(len(centers)), per_class)


def test_a_linear_probe_joins_the_prototypes_once_examples_give_the_center():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 8) + 0.5  # four classes in one narrow cone, as small embedders place texts
    examples_, classes = _blobs(rng, centers, 20)
    labels = scoring.normalize(centers + 0.3 * rng.standard_normal(centers.shape))
    space = scoring.ClassSpace(labels=labels, examples=examples_, example_class=classes)
    scorer = scoring.Scorer(space)
    assert scorer.probe is not None and scorer.probe.shape == (8, 4)
    docs, truth = _blobs(rng, centers, 50)
    with_probe = scorer.scores(docs)
    without = scoring.Scorer(space, probe=False).scores(docs)
    assert not np.allclose(with_probe, without)
    assert (with_probe.argmax(axis=1) == truth).mean() >= (without.argmax(axis=1) == truth).mean() - 0.02
    # Uncentered, or before the examples cover enough classes to give the center: no probe.
    assert scoring.Scorer(space, center=False).probe is None
    few = scoring.ClassSpace(labels=labels, examples=examples_[:20], example_class=classes[:20])
    assert scoring.Scorer(few).probe is None


def test_the_probe_leaves_classes_without_examples_to_their_label():
    rng = np.random.default_rng(1)
    centers = np.eye(5, 8) + 0.5
    examples_, classes = _blobs(rng, centers[:3], 10)  # classes 3 and 4 have no examples
    labels = scoring.normalize(centers)
    space = scoring.ClassSpace(labels=labels, examples=examples_, example_class=classes)
    docs, _ = _blobs(rng, centers, 5)
    with_probe = scoring.Scorer(space).scores(docs)
    without = scoring.Scorer(space, probe=False).scores(docs)
    np.testing.assert_allclose(with_probe[:, 3:], without[:, 3:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(with_probe[:, :3], without[:, :3])


def test_the_public_hierarchical_sample_parses_into_three_levels():
    from perf import classifier_accuracy as harness

    yaml_text, rows = harness.dbpedia_set()
    nodes = yaml_import.parse(yaml_text)
    depth = {n.code: n.code.count(".") + 1 for n in nodes}
    assert [sum(1 for d in depth.values() if d == level) for level in (1, 2, 3)] == [9, 70, 219]
    assert len(rows) == 5000 and all(depth[code] == 3 and text for text, code in rows)
    assert harness.humanize("NaturalPlace") == "Natural place"
    assert harness.humanize("NCAATeamSeason") == "NCAA team season"


def test_labeled_rows_become_examples_and_bad_rows_import_nothing(db, member_user, jd_version):
    taxonomy = jd_version.taxonomy
    rows = [("Gas bill for March, 712 UAH", "10.02.02"), ("Spoon carving with a hook knife", "55.02")]
    assert services.examples_import(actor=member_user, taxonomy=taxonomy, rows=rows) == 2
    assert services.examples_import(actor=member_user, taxonomy=taxonomy, rows=rows) == 0  # not stored twice
    with pytest.raises(ValidationFailed, match="Labeled row 2: expected code '99.99' is not in"):
        services.examples_import(actor=member_user, taxonomy=taxonomy, rows=[("a new one", "10.02"), ("x", "99.99")])
    with pytest.raises(ValidationFailed, match="labeled CSV line 2: the path or text is empty"):
        evaluation.parse_labeled_csv("text,code\n ,10.02\n")
    with pytest.raises(ValidationFailed, match="line 2: expected two columns"):
        evaluation.parse_labeled_csv("Gas bill,10.02\nno code here\n")
    with pytest.raises(ValidationFailed, match="examples.csv line 2: not UTF-8"):
        evaluation.decode_labeled_csv("a,10.02\nРахунок,10.02\n".encode("cp1251"), name="examples.csv")
    assert LabeledExample.objects.filter(taxonomy=taxonomy).count() == 2
    chosen = examples.example_set(jd_version)
    assert chosen.by_code() == {"10.02.02": ["Gas bill for March, 712 UAH"],
                                "55.02": ["Spoon carving with a hook knife"]}


def test_a_correction_teaches_the_next_job(db, archive, jd_version, member_user):
    root, _ = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              include=["*.txt"], rerank_model="", enqueue=False)
    job = pipeline.job_run(job_id=job.pk)
    assert job.example_set["count"] == 0
    result = job.results.exclude(method=ClassificationResult.Method.SKIPPED).order_by("path").first()
    services.result_correct(actor=member_user, result=result, code="30.01")
    services.result_correct(actor=member_user, result=result, code="30.02")  # moved, not added twice
    example = LabeledExample.objects.get(result=result)
    assert (example.code, example.source) == ("30.02", "correction") and example.text.strip()
    again = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                                include=["*.txt"], rerank_model="", enqueue=False)
    again = pipeline.job_run(job_id=again.pk)
    assert again.example_set["count"] == 1 and again.example_set["last_id"] == example.pk
    assert again.results.get(path=result.path).code == "30.02"


def test_the_rerank_prompt_shows_examples_of_its_candidates(db, jd_version):
    nodes = list(jd_version.nodes.filter(code__in=["10.02", "55.02"]).order_by("code"))
    text = rerank.prompt("a bill", [(n, 0.5) for n in nodes], {"10.02.02": ["Gas bill for March"]})
    assert "example: Gas bill for March" in text.split("55.02")[0]
    assert text.count("example:") == 1


def test_classify_command_takes_examples(db, admin_user, archive, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    root, _ = archive
    labeled = tmp_path / "labeled.csv"
    labeled.write_text("text,code\nGas bill for March,10.02\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    call_command("classify", "tests/classifier/data/jd.yaml", str(root / "docs"), "--out", str(out),
                 "--rerank-model", "", "--examples", str(labeled))
    assert LabeledExample.objects.filter(code="10.02", source="csv").count() == 1
    labeled.write_text("text,code\nGas bill,77.77\n", encoding="utf-8")
    with pytest.raises(CommandError, match="Labeled row 1: expected code '77.77' is not in"):
        call_command("classify", "jd", str(root / "docs"), "--examples", str(labeled))


def _two_topics(rng, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels along axes 0 and 1; each topic's documents lean on their label but live mostly on an axis
    of their own (2, 3), as real files share words the label never uses. Returns labels, documents, truth."""
    labels = np.eye(8, dtype=np.float32)[:2] + 0.05
    docs, truth = [], []
    for topic in (0, 1):
        center = 0.5 * np.eye(8)[topic] + np.eye(8)[2 + topic]
        docs.append(center + 0.15 * rng.standard_normal((n, 8)))
        truth += [topic] * n
    return scoring.normalize(labels), scoring.normalize(np.vstack(docs)), np.array(truth)


def test_self_training_on_the_runs_documents_fixes_what_the_label_alone_gets_wrong():
    labels, docs, truth = _two_topics(np.random.default_rng(3))
    # A file of topic 0 that says a little more about topic 1's label than about its own.
    odd = scoring.normalize(np.eye(8)[2] + 0.3 * np.eye(8)[1] + 0.1 * np.eye(8)[0])[None].astype(np.float32)
    fixed = scoring.Scorer(scoring.ClassSpace(labels=labels), adapt=False)
    adapted = scoring.Scorer(scoring.ClassSpace(labels=labels))
    for scorer in (fixed, adapted):
        scorer.observe(np.vstack([docs, odd]))
    assert fixed.scores(odd).argmax() == 1 and fixed.adapted is None
    assert adapted.scores(odd).argmax() == 0 and adapted.adapted is not None
    assert (adapted.scores(docs).argmax(axis=1) == truth).mean() == 1.0


def test_self_training_waits_for_enough_documents_and_refits_as_they_grow():
    labels, docs, _ = _two_topics(np.random.default_rng(4), n=40)
    scorer = scoring.Scorer(scoring.ClassSpace(labels=labels))
    scorer.observe(docs[:10])
    scorer.scores(docs[:10])
    assert scorer.adapted is None  # 10 documents: too few to center or to learn from
    scorer.observe(docs[10:40])
    scorer.scores(docs[10:40])
    assert scorer.fitted_at == 40
    scorer.observe(docs[40:45])
    scorer.scores(docs[40:45])
    assert scorer.fitted_at == 40  # grew by an eighth: the fit stands
    scorer.observe(docs[45:80])
    scorer.scores(docs[45:80])
    assert scorer.fitted_at == 80


def test_self_training_keeps_the_examples_and_the_probe():
    labels, docs, truth = _two_topics(np.random.default_rng(5))
    picked = np.r_[0:3, 40:43]
    extra = np.eye(8, dtype=np.float32)[4:7] * 0.01  # three more classes, so the examples give the center
    space = scoring.ClassSpace(labels=scoring.normalize(np.vstack([labels, np.eye(8)[4:7] + extra])),
                               examples=np.vstack([docs[picked], scoring.normalize(np.eye(8)[4:7] + 0.1)]),
                               example_class=np.r_[truth[picked], 2, 3, 4])
    scorer = scoring.Scorer(space)
    scorer.observe(docs)
    scores = scorer.scores(docs)
    centroids, counts, probe = scorer.adapted
    assert probe is not None and probe.shape == (8, 5)
    assert counts[0] > 3 and counts[1] > 3 and counts[2] >= 1  # the examples stay, confident files join
    assert (scores[:, :2].argmax(axis=1) == truth).mean() == 1.0


def _imbalanced(rng, per_class: int):
    """Three overlapping classes in 16 dimensions; the documents are 80% of the first class."""
    means = scoring.normalize(rng.normal(size=(3, 16))) * 0.6
    shared = scoring.normalize(rng.normal(size=16))

    def draw(c, n):
        return scoring.normalize(means[c] + shared + rng.normal(scale=0.35, size=(n, 16)))

    examples = np.vstack([draw(c, per_class) for c in range(3)])
    example_class = np.repeat(np.arange(3), per_class)
    docs = np.vstack([draw(0, 800), draw(1, 100), draw(2, 100)])
    truth = np.repeat([0, 1, 2], [800, 100, 100])
    space = scoring.ClassSpace(labels=scoring.normalize(means + shared), examples=examples,
                               example_class=example_class)
    return space, docs, truth


def test_the_class_shares_of_the_documents_favour_the_common_class():
    space, docs, truth = _imbalanced(np.random.default_rng(3), per_class=20)
    scorer = scoring.Scorer(space)
    assert scorer.temperature is not None and scoring.TEMPERATURES[0] <= scorer.temperature
    scorer.observe(docs)
    scores = scorer.scores(docs)
    assert scorer.bias[0] > 0 > scorer.bias[1] and scorer.bias[0] > scorer.bias[2]
    balanced = scoring.Scorer(space, prior=False)
    balanced.observe(docs)
    assert (scores.argmax(axis=1) == truth).mean() > (balanced.scores(docs).argmax(axis=1) == truth).mean()


def test_few_examples_per_class_fit_no_temperature_and_no_shares():
    space, docs, _ = _imbalanced(np.random.default_rng(3), per_class=scoring.PRIOR_MIN_EXAMPLES - 1)
    scorer = scoring.Scorer(space)
    scorer.observe(docs)
    scorer.scores(docs)
    assert scorer.temperature is None and scorer.bias is None
    assert scoring.Scorer(scoring.ClassSpace(labels=space.labels)).temperature is None  # zero-shot: none
