"""Downloads through a real Celery worker and the real huggingface_hub against the fake hub."""
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import websockets
from django.conf import settings
from django.test import Client

from models_registry import services
from models_registry.models import Download
from tests.conftest import BASE_DIR, subprocess_env
from tests.models_registry.conftest import MB, SLOW, TINY, finished, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
WEIGHTS = "model-00001-of-00001.safetensors"


def blob_ok(repo, path) -> bool:
    item = repo.files[path]
    folder = settings.PORTAL_WEIGHTS_DIR / "hub" / ("models--" + repo.repo_id.replace("/", "--"))
    target = folder / "blobs" / item.etag
    return target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(
        item.data_path.read_bytes()).hexdigest()


def test_it_downloads_a_repo_into_the_cache(hub, node, operator_user, celery_worker):
    download, joined = services.download_request(actor=operator_user, node=node, repo_id=TINY)
    assert not joined
    done = wait_for(lambda: finished(download.pk))
    assert done.status == "done", done.error
    assert done.bytes_done == done.bytes_total > 3_000_000
    assert done.files_done == done.files_total == 7  # original/*.pth is skipped by default
    repo = hub.repos[TINY]
    snapshot = settings.PORTAL_WEIGHTS_DIR / "hub" / "models--acme--tiny-llama" / "snapshots" / done.commit
    assert not (snapshot / "original").exists()
    assert all(blob_ok(repo, p) for p in repo.files if not p.startswith("original/"))
    assert (snapshot / "config.json").exists()


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_progress_reaches_a_websocket_client_at_most_twice_a_second(hub, node, operator_user, celery_worker,
                                                                   asgi_server):
    cookie = session_cookie(operator_user)

    async def scenario():
        async with websockets.connect(f"{asgi_server.ws_url}/ws/events/?groups=models.downloads",
                                      origin=asgi_server.url, additional_headers={"Cookie": cookie}) as ws:
            while json.loads(await ws.recv())["event"] != "subscribe.ok" or False:
                pass
            download, _ = await asyncio.to_thread(services.download_request, actor=operator_user, node=node,
                                                  repo_id=SLOW)
            events = []
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if message["event"].startswith("download."):
                    events.append((time.monotonic(), message))
                    if message["event"] == "download.status" and message["data"]["status"] == "done":
                        return download, events

    download, events = asyncio.run(scenario())
    progress = [(t, m["data"]) for t, m in events if m["event"] == "download.progress"]
    assert len(progress) >= 3
    assert all(d["id"] == download.pk and d["repo_id"] == SLOW for _, d in progress)
    done_bytes = [d["bytes_done"] for _, d in progress]
    assert done_bytes == sorted(done_bytes) and done_bytes[-1] > 0
    assert {"rate_bps", "eta_s", "current_file", "percent", "bytes_total"} <= set(progress[0][1])
    assert any(d["current_file"] == WEIGHTS for _, d in progress)
    assert any(d["rate_bps"] > 0 for _, d in progress)
    gaps = [b[0] - a[0] for a, b in zip(progress, progress[1:], strict=False)]
    assert min(gaps) > 0.4  # throttled to 2 events a second (arrival jitter allowed)
    final = events[-1][1]["data"]
    assert final["percent"] == 100.0 and final["bytes_done"] == final["bytes_total"]


def test_cancel_keeps_partial_files_and_resume_continues_from_them(hub, node, operator_user, celery_worker):
    hub.repos[SLOW].rate_bps = 4 * MB
    download, _ = services.download_request(actor=operator_user, node=node, repo_id=SLOW)
    wait_for(lambda: Download.objects.get(pk=download.pk).bytes_done >= 10 * MB)
    services.download_cancel(download=Download.objects.get(pk=download.pk), actor=operator_user)
    cancelled = Download.objects.get(pk=download.pk)
    assert cancelled.status == "cancelled"
    # The task sees the cancel within half a second and stops writing; the partial blob stays.
    item = hub.repos[SLOW].files[WEIGHTS]
    partial = settings.PORTAL_WEIGHTS_DIR / "hub" / "models--acme--slow-llama" / "blobs" / f"{item.sha256}.partial"
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 10 * MB)
    time.sleep(1.0)
    kept = partial.stat().st_size
    assert kept < item.size
    hub.repos[SLOW].rate_bps = None
    services.download_resume(download=cancelled, actor=operator_user)
    done = wait_for(lambda: finished(download.pk))
    assert done.status == "done", done.error
    assert f"bytes={kept}-" in hub.range_requests(WEIGHTS)
    assert blob_ok(hub.repos[SLOW], WEIGHTS)
    from accounts.models import AuditEvent

    assert set(AuditEvent.objects.filter(target_id=str(download.pk)).values_list("action", flat=True)) == {
        "models.download.requested", "models.download.cancelled", "models.download.resumed"}


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q",
         f"default,node.{settings.NODE_NAME}", "-c", "2", "--loglevel", "WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def test_a_download_interrupted_by_a_killed_worker_resumes_when_the_worker_restarts(hub, node, operator_user,
                                                                                    settings):
    hub.repos[SLOW].rate_bps = 4 * MB
    env = subprocess_env(HF_HOME=str(settings.PORTAL_WEIGHTS_DIR), HF_ENDPOINT=hub.url)
    worker = start_worker(env)
    try:
        download, _ = services.download_request(actor=operator_user, node=node, repo_id=SLOW)
        running = wait_for(lambda: (d := Download.objects.get(pk=download.pk)).bytes_done >= 10 * MB and d, 60)
        assert running.status == "running" and running.worker_pid
        time.sleep(0.3)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        assert Download.objects.get(pk=download.pk).status == "running"  # nobody told the database
        hub.repos[SLOW].rate_bps = None
        worker = start_worker(env)
        done = wait_for(lambda: finished(download.pk), 60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(20)
    assert done.status == "done", done.error
    assert done.attempts == 2
    resumed_from = [int(r.split("=")[1].rstrip("-")) for r in hub.range_requests(WEIGHTS)]
    assert resumed_from and resumed_from[0] >= 10 * MB
    assert blob_ok(hub.repos[SLOW], WEIGHTS)
