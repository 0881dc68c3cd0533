"""Exactly one run writes a job: cancelled and resumed before the first run noticed, the job still counts
each file once (it used to finish with 6 of 3 files done, each reranked twice)."""
import time

import pytest

from classifier import scoring, services
from classifier.models import ClassificationJob
from tests.classifier.test_jobs import wait_for


def _until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_job_cancelled_and_resumed_at_once_runs_once(celery_worker, settings, tmp_path, fake_llm, jd_version,
                                                       member_user, monkeypatch):
    root = tmp_path / "archive"
    root.mkdir()
    (root / "receipt.txt").write_text("Supermarket receipt: milk, bread, cheese. Total 10 EUR.")
    (root / "spoon.md").write_text("Carving a spoon from basswood with a hook knife.")
    (root / "pods.txt").write_text("kubectl get pods; helm upgrade the chart in the cluster")
    settings.PORTAL_CLASSIFIER_ROOTS = [str(root)]
    settings.PORTAL_CLASSIFIER_BATCH = 1
    monkeypatch.setattr(scoring, "FIRST_BATCH", 1)  # one file a batch from the first on: a write after each
    fake_llm.hold()  # the first run waits in its first rerank
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root), margin=1.0)
    _until(lambda: fake_llm.chats() == 1, "the first run's first rerank")

    services.job_cancel(actor=member_user, job=job)
    services.job_resume(actor=member_user, job=job)
    _until(lambda: fake_llm.chats() == 2, "the resumed run's first rerank")  # the second run claimed the job
    fake_llm.release()

    job = wait_for(job)
    assert job.status == ClassificationJob.Status.DONE, job.status_reason
    assert (job.files_total, job.files_done, job.files_reranked) == (3, 3, 3)
    assert job.results.count() == 3
    time.sleep(1)  # the first run, superseded, stopped at its first write instead of going on
    assert fake_llm.chats() == 4
    job.refresh_from_db()
    assert (job.status, job.files_done) == ("done", 3)
