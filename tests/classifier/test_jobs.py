"""Jobs end to end: a real Celery worker, the real packaged embedder, the fake LLM for reranks."""
import asyncio
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.models import AuditEvent
from classifier import events, pipeline, scoring, services
from classifier.models import ClassificationJob, ClassificationResult
from classifier.tasks import classification_job_run_task
from sparkportal.exceptions import InvalidTransition

Method = ClassificationResult.Method


async def receive(layer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout=10)


def wait_for(job, statuses=("done", "failed", "cancelled"), timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job stayed {job.status}")


@pytest.mark.django_db(transaction=True)
def test_a_job_sorts_the_multilingual_archive_with_live_progress(celery_worker, archive, fake_llm, jd_version,
                                                                 member_user):
    root, labels = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"), depth=2,
                              enqueue=False)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.job_group(job.pk), channel)
    classification_job_run_task.delay(job.pk)
    job = wait_for(job)
    assert job.status == "done", job.status_reason
    assert (job.files_total, job.files_done, job.files_skipped) == (len(labels), len(labels), 0)

    results = {r.path: r for r in job.results.all()}
    correct = sum(results[path].code == code for path, code in labels.items())
    embedding_top1 = sum(results[path].candidates[0]["code"] == code for path, code in labels.items())
    print(f"accuracy at depth 2: embedding top-1 {embedding_top1}/{len(labels)}, after rerank {correct}/{len(labels)}")
    top5 = sum(code in [c["code"] for c in results[path].candidates] for path, code in labels.items())
    # The taxonomy keeps the leaks lint reports (an empty 47, near-twin 20.02/20.03), which cost a few files.
    assert embedding_top1 / len(labels) >= 0.75 and top5 / len(labels) >= 0.9
    assert correct / len(labels) >= 0.7, {Path(p).name: (r.code, labels[p], r.method) for p, r in results.items()
                                            if r.code != labels[p]}
    by_language = {"uk": "квитанція_за_газ_березень.txt", "ru": "ремонт_сантехники.docx", "en": "k8s_rollout_notes.md"}
    assert all(len(results[str(root / "docs" / name)].candidates) == 5 for name in by_language.values())

    reranked = [r for r in results.values() if r.method == Method.RERANK]
    assert job.files_reranked == len(reranked) > 0
    assert all(0 <= r.confidence <= 1 and r.reason for r in reranked)
    assert all(r.margin > job.margin for r in results.values() if r.method == Method.EMBEDDING)
    assert job.seconds_embed > 0 and job.seconds_extract > 0
    assert AuditEvent.objects.filter(action="classifier.job.created", target_id=str(job.pk)).exists()

    progress = []
    while not progress or progress[-1]["status"] != "done":
        progress.append(async_to_sync(receive)(layer, channel)["data"])
    assert progress[-1]["files_done"] == len(labels)
    assert progress[-1]["rerank_share"] == round(job.rerank_share, 4)
    assert {"files_per_s", "eta_s", "files_total", "files_skipped", "seconds_embed"} <= set(progress[0])
    assert progress[-1]["seconds_embed"] == round(job.seconds_embed, 2) > 0
    # the page says what a job waits for before its first file is done
    assert "Embedding the taxonomy labels." in [p["message"] for p in progress]


def _small_root(root: Path, outside: Path) -> Path:
    root.mkdir()
    (root / "receipt.txt").write_text("Supermarket receipt: milk, bread, cheese. Total 10 EUR.")
    (root / "spoon.md").write_text("Carving a spoon from basswood with a hook knife.")
    (root / "pods.txt").write_text("kubectl get pods; helm upgrade the chart in the cluster")
    (root / "huge.log").write_bytes(b"x" * 5000)
    outside.write_text("private")
    (root / "escape.txt").symlink_to(outside)
    return root


def test_invalid_llm_answers_fall_back_and_bad_files_are_skipped(db, settings, tmp_path, fake_llm, jd_version,
                                                                 member_user):
    root = _small_root(tmp_path / "archive", tmp_path / "secret.txt")
    settings.PORTAL_CLASSIFIER_ROOTS = [str(root)]
    fake_llm.script[:] = ["invalid", "wrong_code"]  # the first file's two attempts
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root), margin=1.0,
                              max_bytes=1000, enqueue=False)
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "done"
    results = {Path(r.path).name: r for r in job.results.all()}
    assert results["escape.txt"].method == Method.SKIPPED
    assert results["escape.txt"].reason == "symlink leads outside the archive roots"
    assert results["huge.log"].reason == "larger than the limit of 1000 bytes"
    fallback = [r for r in results.values() if r.method == Method.FALLBACK]
    assert len(fallback) == 1 and fallback[0].code == fallback[0].candidates[0]["code"]
    assert "LLM answer invalid twice (not JSON" in fallback[0].reason
    assert "'99.99' is not one of the candidates" in fallback[0].reason
    assert {r.method for r in results.values()} == {Method.SKIPPED, Method.FALLBACK, Method.RERANK}
    assert (job.files_total, job.files_skipped, job.files_reranked) == (5, 2, 3)


def test_a_failed_job_resumes_without_redoing_finished_files(db, settings, tmp_path, archive, fake_llm, jd_version,
                                                            member_user, monkeypatch):
    root, labels = archive
    settings.VAR_DIR = tmp_path  # labels are embedded afresh through the TEI backend
    settings.PORTAL_CLASSIFIER_BATCH = 8
    monkeypatch.setattr(scoring, "FIRST_BATCH", 8)  # batches of 8 from the first on
    settings.PORTAL_CLASSIFIER_EMBEDDERS = {**settings.PORTAL_CLASSIFIER_EMBEDDERS, "tei-e5": {
        "backend": "tei", "url": fake_llm.url, "batch_size": 64, "query_prefix": "", "passage_prefix": ""}}
    fake_llm.embed_fail_from = 5  # 2 requests for the 86 labels, 2 batches of files, then the backend breaks
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"), embedder="tei-e5",
                              rerank_model="", enqueue=False)
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "failed" and "CUDA error" in job.status_reason and "424" in job.status_reason
    assert job.files_done == 16
    first = dict(job.results.values_list("path", "pk"))

    fake_llm.embed_fail_from = None
    before = fake_llm.embed_count
    services.job_resume(actor=member_user, job=job)
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "done" and job.files_done == len(labels)
    assert fake_llm.embed_count - before == 2  # only the 11 files left, in two batches
    assert {p: pk for p, pk in job.results.values_list("path", "pk") if p in first} == first
    assert AuditEvent.objects.filter(action="classifier.job.resumed").count() == 1


def test_cancel_and_resume_follow_the_state_machine(db, archive, jd_version, member_user):
    root, _ = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"), enqueue=False)
    services.job_cancel(actor=member_user, job=job)
    assert pipeline.job_run(job_id=job.pk) is None  # a cancelled job is not claimed
    job = services.job_resume(actor=member_user, job=job)
    assert job.status == ClassificationJob.Status.QUEUED
    ClassificationJob.objects.filter(pk=job.pk).update(status="done")
    with pytest.raises(InvalidTransition, match=f"Job {job.pk} is done; it cannot become cancelled"):
        services.job_cancel(actor=member_user, job=job)
