"""Weights on disk per node: each node's own worker lists, measures and deletes its own cache.

A second node runs as a real worker process with its own HF_HOME and PORTAL_NODE_NAME, beside this
process's worker for the local node, so a listing or a deletion done on the wrong host would show.
"""
import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from accounts.models import AuditEvent
from models_registry import services
from models_registry.models import NodeWeights, WeightsDeletion
from nodes.models import Node
from servers.models import Server
from tests.conftest import BASE_DIR, subprocess_env
from tests.models_registry.conftest import SLOW, TINY, finished, wait_for

BODY = {"name": "tiny", "repo_id": TINY, "gpu_memory_utilization": 0.5, "max_model_len": 4096}


def folder(cache, repo_id):
    return cache / "hub" / ("models--" + repo_id.replace("/", "--"))


@pytest.fixture
def gpu2(hub, transactional_db, tmp_path):
    """Node gpu2: a worker process of its own, consuming node.gpu2, with its own weights folder."""
    node = Node.objects.create(name="gpu2", queue="node.gpu2")
    cache = tmp_path / "gpu2-hf"
    env = subprocess_env(HF_HOME=str(cache), HF_ENDPOINT=hub.url, PORTAL_NODE_NAME="gpu2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q", "node.gpu2", "-c", "2", "-P", "threads",
         "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    yield node, cache
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def scanned(*nodes):
    rows = [NodeWeights.objects.filter(node=n).first() for n in nodes]
    return all(r is not None and r.scanned_at is not None and not r.pending for r in rows)


def deletion_over(pk):
    d = WeightsDeletion.objects.get(pk=pk)
    return d if d.status not in WeightsDeletion.ACTIVE else None


@pytest.mark.django_db(transaction=True)
def test_each_node_lists_and_deletes_its_own_cache(hub, node, gpu2, operator_user, celery_worker, client):
    gpu2_node, gpu2_cache = gpu2
    local_cache = settings.PORTAL_WEIGHTS_DIR
    client.force_login(operator_user)
    profile = services.profile_create(actor=operator_user, data=BODY)
    hub.repos[SLOW].rate_bps = None
    pending = [services.download_request(actor=operator_user, node=node, profile=profile)[0],
               services.download_request(actor=operator_user, node=gpu2_node, profile=profile)[0],
               services.download_request(actor=operator_user, node=gpu2_node, repo_id=SLOW)[0]]
    for d in pending:
        assert wait_for(lambda d=d: finished(d.pk), 60).status == "done"

    asked = client.post("/api/models/weights/scan", {}, content_type="application/json")
    assert asked.status_code == 202 and sorted(asked.json()["requested"]) == sorted(["gpu2", node.name])
    wait_for(lambda: scanned(node, gpu2_node), 30)
    listing = {e["node"]: e for e in client.get("/api/models/weights").json()}
    local, remote = listing[node.name], listing["gpu2"]
    assert [r["repo_id"] for r in local["rows"]] == [TINY]
    assert [r["repo_id"] for r in remote["rows"]] == [SLOW, TINY]
    assert (local["path"], remote["path"]) == (str(local_cache / "hub"), str(gpu2_cache / "hub"))
    assert remote["free_gb"] > 0 and remote["total_gb"] >= remote["free_gb"]
    remote_rows = {r["repo_id"]: r for r in remote["rows"]}
    assert remote_rows[TINY]["profiles"] == ["tiny"] and remote_rows[SLOW]["orphan"] is True

    # A ready server on gpu2 holds gpu2's copy, not the local one.
    server = Server.objects.create(node=gpu2_node, profile=profile, served_model_name="tiny", port=8011,
                                   status="ready")
    assert client.get("/api/models/weights?node=gpu2").json()[0]["rows"][1]["in_use"] == ["tiny:8011 (ready)"]
    refused = client.post("/api/models/weights/delete", {"repo_id": TINY, "confirm": TINY, "node": "gpu2"},
                          content_type="application/json")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (f"The weights of {TINY} are in use by tiny on gpu2:8011 (ready): stop those "
                                        "servers first.")
    unconfirmed = client.post("/api/models/weights/delete", {"repo_id": TINY, "node": "gpu2"},
                              content_type="application/json")
    assert unconfirmed.status_code == 400
    assert unconfirmed.json()["detail"] == f"To delete the weights of {TINY}, confirm by typing the repo id exactly."

    queued = client.post("/api/models/weights/delete", {"repo_id": TINY, "confirm": TINY, "node": node.name},
                         content_type="application/json")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    done = wait_for(lambda: deletion_over(queued.json()["id"]), 30)
    assert done.status == "done" and done.freed_bytes > 3_000_000
    assert not folder(local_cache, TINY).exists() and folder(gpu2_cache, TINY).exists()

    Server.objects.filter(pk=server.pk).update(status="stopped")
    queued = client.post("/api/models/weights/delete", {"repo_id": TINY, "confirm": TINY, "node": "gpu2"},
                         content_type="application/json")
    done = wait_for(lambda: deletion_over(queued.json()["id"]), 30)
    assert done.status == "done", done.error
    assert not folder(gpu2_cache, TINY).exists() and folder(gpu2_cache, SLOW).exists()
    # The deleting worker lists its cache again at once.
    assert [r["repo_id"] for r in client.get("/api/models/weights?node=gpu2").json()[0]["rows"]] == [SLOW]
    assert client.get(f"/api/models/weights/deletions/{done.pk}").json()["freed_bytes"] == done.freed_bytes
    audited = AuditEvent.objects.filter(action="models.weights.deleted", target_id=TINY)
    assert sorted(e.details["node"] for e in audited) == sorted(["gpu2", node.name])
    assert {e.actor_id for e in audited} == {operator_user.pk}


def test_the_worker_checks_again_right_before_deleting(hub, node, operator_user):
    profile = services.profile_create(actor=operator_user, data=BODY)
    download, _ = services.download_request(actor=operator_user, node=node, profile=profile)
    services.download_run(download_id=download.pk)
    deletion, joined = services.weights_delete_request(node=node, repo_id=TINY, confirm=TINY, actor=operator_user)
    again, joined_again = services.weights_delete_request(node=node, repo_id=TINY, confirm=TINY, actor=operator_user)
    assert (joined, joined_again, again.pk) == (False, True, deletion.pk)
    # A server was queued on this node after the request was accepted.
    Server.objects.create(node=node, profile=profile, served_model_name="tiny", port=8012, status="queued")
    refused = services.weights_deletion_run(deletion_id=deletion.pk)
    assert (refused.status, refused.error_code) == ("failed", "weights_in_use")
    assert refused.error == f"The weights of {TINY} are in use by tiny on {node.name}:8012 (queued): stop those " \
                           "servers first."
    assert folder(settings.PORTAL_WEIGHTS_DIR, TINY).exists()
    assert services.weights_deletion_run(deletion_id=deletion.pk) is None  # a second delivery does nothing


def test_a_task_for_another_node_never_touches_this_hosts_cache(hub, node, operator_user):
    other = Node.objects.create(name="gpu3", queue="node.gpu3")
    profile = services.profile_create(actor=operator_user, data=BODY)
    download, _ = services.download_request(actor=operator_user, node=node, profile=profile)
    services.download_run(download_id=download.pk)
    deletion, _ = services.weights_delete_request(node=other, repo_id=TINY, confirm=TINY, actor=operator_user)
    wrong = services.weights_deletion_run(deletion_id=deletion.pk)
    assert (wrong.status, wrong.error_code) == ("failed", "wrong_host")
    assert wrong.error == (f"This task for node gpu3 ran on the worker of {settings.NODE_NAME}: queue node.gpu3 must "
                           "be consumed only by gpu3's worker (started with PORTAL_NODE_NAME=gpu3).")
    assert folder(settings.PORTAL_WEIGHTS_DIR, TINY).exists()
    scan = services.weights_scan_run(node_id=other.pk)
    assert scan.repos == [] and scan.error == wrong.error
