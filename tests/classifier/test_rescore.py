"""At its end a job scores its early files again with what the whole run taught (classifier.pipeline._rescore):
a changed top class updates the stored result in place, a small new lead asks the LLM, and a person's
correction made meanwhile is never overwritten."""
import csv
import io
import json
from pathlib import Path

import numpy as np

from classifier import events, pipeline, scoring, services
from classifier.archive import scan
from classifier.models import ClassificationResult
from classifier.taxonomy import label_index

Method = ClassificationResult.Method


def _order(job) -> list[str]:
    return [str(f.path) for f in scan.walk(Path(job.source_path), include=[], exclude=[], max_bytes=job.max_bytes)
            if not f.skip_reason]


def _tei(settings, fake_llm) -> None:
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, "tei-e5": {
        "backend": "tei", "url": fake_llm.url, "batch_size": 64, "query_prefix": "", "passage_prefix": ""}}


def test_a_job_rescores_its_early_files_and_keeps_corrections(db, client, settings, tmp_path, archive, fake_llm,
                                                              jd_version, member_user, monkeypatch):
    root, labels = archive
    settings.VAR_DIR = tmp_path
    settings.PORTAL_CLASSIFIER_BATCH = 8
    monkeypatch.setattr(scoring, "FIRST_BATCH", 8)  # 4 batches for the 27 files
    monkeypatch.setattr(scoring, "MIN_DOCUMENTS_TO_CENTER", 8)  # the first batch teaches (32 by default)
    _tei(settings, fake_llm)
    sent = []
    monkeypatch.setattr(events, "send_job_progress", sent.append)
    seen = {}
    real = label_index.LabelIndex.rescore

    def rescore(self, k=label_index.TOP_K):
        hits = real(self, k)
        seen["rows"] = len(hits)
        order = _order(job)  # the run's files in the order they were scored
        results = {r.path: r for r in ClassificationResult.objects.filter(job=job)}
        # Files the real re-scoring left in their class, so the change below is the only one.
        moved, corrected, unsure = [p for i, p in enumerate(order) if results[p].code == hits[i][0][0].code][:3]
        seen.update(moved=moved, corrected=corrected, unsure=unsure)
        # A person corrects a file while the job is re-scoring: the correction must stand.
        services.result_correct(actor=member_user, result=results[corrected], code="10.02.01")

        def other(i, lead):
            first, second = hits[i][0][0], hits[i][1][0]
            return [(second, 0.9), (first, 0.9 - lead), *hits[i][2:]]

        for path, lead in ((moved, 0.5), (corrected, 0.5), (unsure, 0.0)):
            hits[order.index(path)] = other(order.index(path), lead)
        seen["expected"] = hits[order.index(moved)][0][0].code
        return hits

    monkeypatch.setattr(label_index.LabelIndex, "rescore", rescore)
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              embedder="tei-e5", rerank_model="", enqueue=False)  # no LLM: every file on its lead
    chats_before = fake_llm.chats()
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "done", job.status_reason
    scored = job.files_done - job.files_skipped
    assert seen["rows"] == scored  # every file of the run, from the vectors kept (none embedded again)
    results = {r.path: r for r in job.results.all()}
    moved = results[seen["moved"]]
    assert (moved.code, moved.method) == (seen["expected"], Method.EMBEDDING)
    assert moved.candidates[0]["code"] == moved.code and moved.node.code == moved.code
    assert moved.reason.endswith("re-scored at the end of the job")
    corrected = results[seen["corrected"]]
    assert (corrected.code, corrected.method) == ("10.02.01", Method.MANUAL)
    assert corrected.reason == f"corrected by {member_user.get_username()}"
    # Without an LLM a lead of 0 is taken on the embedding too.
    assert results[seen["unsure"]].method == Method.EMBEDDING and fake_llm.chats() == chats_before
    assert (job.files_done, job.files_total, job.files_reranked) == (len(labels), len(labels), 0)
    assert job.results.count() == len(labels)
    messages = [p["message"] for p in sent]
    assert "Re-scoring the first files with what the job learned from all of them." in messages
    rescored = job.results.filter(reason__endswith="re-scored at the end of the job").count()
    assert rescored >= 2 and f"Re-scored the first files: {rescored} changed class." in messages  # not the corrected
    assert sent[-1]["status"] == "done" and sent[-1]["files_done"] == len(labels)

    client.force_login(member_user)
    body = client.get(f"/classifier/jobs/{job.pk}/export.csv").content.decode()
    exported = {r["path"]: r for r in csv.DictReader(io.StringIO(body))}
    assert exported[seen["moved"]]["code"] == moved.code and exported[seen["corrected"]]["method"] == "manual"
    assert len(exported) == len(labels)
    data = json.loads(client.get(f"/classifier/jobs/{job.pk}/export.json").content)
    assert len(data) == len(labels)
    page = client.get(f"/classifier/jobs/{job.pk}/")
    assert page.status_code == 200 and moved.code in page.content.decode()


def test_a_small_new_lead_asks_the_llm_and_counts_it(db, settings, tmp_path, archive, fake_llm, jd_version,
                                                    member_user, monkeypatch):
    root, labels = archive
    settings.VAR_DIR = tmp_path
    settings.PORTAL_CLASSIFIER_BATCH = 8
    monkeypatch.setattr(scoring, "FIRST_BATCH", 8)
    monkeypatch.setattr(scoring, "MIN_DOCUMENTS_TO_CENTER", 8)
    _tei(settings, fake_llm)
    real = label_index.LabelIndex.rescore
    picked = {}

    def rescore(self, k=label_index.TOP_K):
        hits = real(self, k)
        order = _order(job)
        stored = dict(ClassificationResult.objects.filter(job=job, method=Method.EMBEDDING).values_list("path", "code"))
        i = next(i for i, p in enumerate(order) if stored.get(p) == hits[i][0][0].code)
        first = ClassificationResult.objects.get(job=job, path=order[i])
        hits[i] = [(hits[i][1][0], 0.9), (hits[i][0][0], 0.9), *hits[i][2:]]
        picked.update(path=first.path, code=hits[i][0][0].code)
        return hits

    monkeypatch.setattr(label_index.LabelIndex, "rescore", rescore)
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              embedder="tei-e5", margin=0.0, enqueue=False)
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "done", job.status_reason
    result = job.results.get(path=picked["path"])
    # The fake LLM answers with the first candidate, the new top class.
    assert (result.method, result.code) == (Method.RERANK, picked["code"])
    assert job.files_reranked == job.results.filter(method__in=[Method.RERANK, Method.FALLBACK]).count()


def test_a_single_batch_is_not_rescored(db, settings, tmp_path, archive, fake_llm, jd_version, member_user,
                                        monkeypatch):
    root, labels = archive
    settings.VAR_DIR = tmp_path
    _tei(settings, fake_llm)
    calls = []
    monkeypatch.setattr(label_index.LabelIndex, "rescore", lambda self, k=5: calls.append(1) or [])
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              embedder="tei-e5", rerank_model="", enqueue=False)
    assert pipeline.job_run(job_id=job.pk).status == "done"
    assert calls == []  # 27 files in the first batch of 512: scored with everything the run saw


def test_rescore_seen_refits_on_every_document_kept():
    rng = np.random.default_rng(0)
    labels = scoring.normalize(rng.normal(size=(3, 16)))
    scorer = scoring.Scorer(scoring.ClassSpace(labels=labels))
    assert scorer.rescore_seen() is None  # nothing seen yet
    first, later = rng.normal(size=(40, 16)), rng.normal(size=(40, 16))
    scorer.observe(first)
    scorer.scores(first)
    scorer.observe(later)
    final = scorer.rescore_seen()
    assert final.shape == (80, 3) and scorer.fitted_at == 80
    assert scoring.Scorer(scoring.ClassSpace(labels=labels), center=False).rescore_seen() is None
