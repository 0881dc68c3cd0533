"""The rerank goes through the portal's gateway as the job's owner: their quota, their usage, a key per run.

A real daphne serves the gateway, a fake `vllm serve` answers behind it (structured outputs), and a real
Celery worker runs the jobs.
"""
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis

from accounts import services as account_services
from accounts.models import ApiKey, AuditEvent
from classifier import pipeline, services
from classifier.models import ClassificationResult
from classifier.tasks import classification_job_run_task, evaluation_run_task
from gateway.models import UsageRecord
from nodes.models import Node
from servers.models import Server
from tests.classifier.test_jobs import wait_for
from tests.gateway.conftest import FakeVllm

Method = ClassificationResult.Method
MODEL = "rerank-llm"


@pytest.fixture(scope="module")
def fake_vllm():
    fake = FakeVllm(MODEL)
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.close()


@pytest.fixture
def gateway(settings, asgi_server, fake_vllm):
    """The portal's gateway is the rerank URL, with the fake engine ready behind it; quota counters start empty
    (user ids repeat between tests)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("portal:q:*"):
        client.delete(key)
    node = Node.objects.create(name="gw", queue="node.gw")
    Server.objects.create(node=node, served_model_name=MODEL, port=fake_vllm.port, status=Server.Status.READY)
    settings.PORTAL_GATEWAY_URL = settings.PORTAL_CLASSIFIER_LLM_URL = asgi_server.url + "/v1"
    settings.PORTAL_CLASSIFIER_LLM_API_KEY = "sk-operator-external-only"  # never sent to the gateway
    return asgi_server


@pytest.fixture
def small_archive(settings, tmp_path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "receipt.txt").write_text("Supermarket receipt: milk, bread, cheese. Total 10 EUR.")
    (root / "spoon.md").write_text("Carving a spoon from basswood with a hook knife.")
    (root / "pods.txt").write_text("kubectl get pods; helm upgrade the chart in the cluster")
    settings.PORTAL_CLASSIFIER_ROOTS = [str(root)]
    return root


def _job(owner, version, root: Path):
    # margin 1.0: no embedding lead is ever enough, so every file goes to the LLM
    return services.job_create(owner=owner, version=version, source_path=str(root), margin=1.0,
                               rerank_model=MODEL, enqueue=False)


def _usage(user, *, count: int, timeout: float = 15.0) -> list[UsageRecord]:
    """The gateway writes its ledger in the background: wait until `count` rows of `user` are there."""
    deadline = time.monotonic() + timeout
    while True:
        rows = list(UsageRecord.objects.filter(user=user).order_by("created_at", "id"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _job_key(owner, job) -> ApiKey:
    return ApiKey.objects.get(owner=owner, name=f"classifier job #{job.pk}")


@pytest.mark.django_db(transaction=True)
def test_reranks_are_charged_to_the_job_owner_with_a_key_revoked_when_the_job_ends(
        celery_worker, gateway, small_archive, jd_version, member_user, stranger):
    job = _job(member_user, jd_version, small_archive)
    classification_job_run_task.delay(job.pk)
    job = wait_for(job)
    assert job.status == "done", job.status_reason
    results = list(job.results.all())
    assert len(results) == 3 and {r.method for r in results} == {Method.RERANK}
    assert all(r.code == r.candidates[0]["code"] and r.confidence == 0.5 for r in results)  # the fake's pick

    key = _job_key(member_user, job)
    assert key.revoked_at is not None and key.gateway_only and key.scopes == [MODEL]
    assert abs(key.expires_at - key.created_at - services.JOB_KEY_LIFETIME) < timedelta(minutes=1)
    rows = _usage(member_user, count=3)
    assert len(rows) == 3
    assert {(r.username, r.api_key_id, r.key_prefix, r.model, r.endpoint, r.status) for r in rows} == {
        ("mia", key.pk, key.prefix, MODEL, "chat/completions", 200)}
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in rows)
    assert not UsageRecord.objects.filter(user=stranger).exists()
    audit = {e.action: e for e in AuditEvent.objects.filter(target_type="accounts.apikey", target_id=str(key.pk))}
    assert set(audit) == {"accounts.apikey.created", "accounts.apikey.revoked"}
    assert audit["accounts.apikey.created"].details["gateway_only"] is True
    assert audit["accounts.apikey.revoked"].details["reason"] == f"classifier job #{job.pk} ended"
    assert audit["accounts.apikey.revoked"].actor == member_user

    # An evaluation's reranks are the asking user's too, with a key of its own.
    reports = evaluation_run_task.delay(
        version_id=jd_version.pk, rows=[["Carving a spoon from basswood", "55.03"]], user="mia",
        user_id=member_user.pk, settings_list=[{"embedder_key": "multilingual-e5-small", "depth": 2, "margin": 1.0,
                                                "rerank_model": MODEL}]).get(timeout=120)
    assert reports[0]["rerank_share"] == 1.0 and reports[0]["rerank_fallbacks"] == 0
    evaluation_key = ApiKey.objects.get(owner=member_user, name__startswith="classifier evaluation ")
    assert evaluation_key.revoked_at is not None
    assert [r.api_key_id for r in _usage(member_user, count=4)][3:] == [evaluation_key.pk]


@pytest.mark.django_db(transaction=True)
def test_an_owner_out_of_tokens_gets_fallbacks_saying_why_and_the_job_completes(
        celery_worker, gateway, small_archive, jd_version, member_user):
    account_services.quota_set(actor=member_user, user=member_user, tokens_per_day=5000)
    _key, raw = account_services.api_key_create(owner=member_user, name="laptop")
    # The owner's own chat spends all but a few dozen of the day's tokens (the fake counts exactly max_tokens).
    spent = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"}, timeout=30,
                       json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4900,
                             "ignore_eos": True})
    assert spent.status_code == 200, spent.text

    job = _job(member_user, jd_version, small_archive)
    classification_job_run_task.delay(job.pk)
    job = wait_for(job)
    assert job.status == "done", job.status_reason
    results = list(job.results.all())
    assert {r.method for r in results} == {Method.FALLBACK} and job.files_reranked == 3
    assert all(r.code == r.candidates[0]["code"] for r in results)
    for r in results:
        assert r.reason.startswith("rerank refused: tokens/day quota reached (Quota: "), r.reason
        assert r.reason.endswith("): embedding top-1 taken")

    # The first file was refused twice (the retry); the others fell back without asking again.
    key = _job_key(member_user, job)
    rows = _usage(member_user, count=3)
    refused = [r for r in rows if r.api_key_id == key.pk]
    assert [(r.status, r.error_code) for r in refused] == [(429, "tokens_per_day_exceeded")] * 2
    assert key.revoked_at is not None


def test_a_failed_run_revokes_its_key_and_one_left_by_a_dead_worker(db, settings, small_archive, jd_version,
                                                                   member_user):
    settings.PORTAL_GATEWAY_URL = settings.PORTAL_CLASSIFIER_LLM_URL = "http://127.0.0.1:9/v1"
    job = _job(member_user, jd_version, small_archive)
    leftover, _raw = account_services.api_key_create(owner=member_user, name=f"classifier job #{job.pk}",
                                                     gateway_only=True)
    settings.PORTAL_CLASSIFIER_ROOTS = [str(small_archive / "elsewhere")]  # the source left the roots: the run fails
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "failed" and "no longer inside the archive roots" in job.status_reason
    keys = list(ApiKey.objects.filter(owner=member_user, name=f"classifier job #{job.pk}").order_by("pk"))
    assert len(keys) == 2 and all(k.revoked_at is not None for k in keys)
    reasons = [e.details["reason"] for e in AuditEvent.objects.filter(action="accounts.apikey.revoked")
               .order_by("pk")]
    assert reasons == [f"left by an interrupted run of classifier job #{job.pk}", f"classifier job #{job.pk} ended"]
    assert keys[0].pk == leftover.pk


def test_an_external_llm_gets_the_operators_key_and_no_portal_key_is_made(db, settings, small_archive, fake_llm,
                                                                         jd_version, member_user):
    settings.PORTAL_CLASSIFIER_LLM_API_KEY = "sk-external"
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(small_archive), margin=1.0,
                              rerank_model=fake_llm.model, enqueue=False)
    job = pipeline.job_run(job_id=job.pk)
    assert job.status == "done" and job.files_reranked == 3
    assert {r["auth"] for r in fake_llm.requests if r["path"] == "/v1/chat/completions"} == {"Bearer sk-external"}
    assert not ApiKey.objects.filter(owner=member_user).exists()
