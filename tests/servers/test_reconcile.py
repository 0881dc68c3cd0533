"""Reconcile: dead engines fail, strays are listed as external, a restarted worker re-adopts."""
import contextlib
import logging
import os
import signal
import subprocess
import time

import httpx
import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from servers import reconcile, services
from servers.models import Server
from sparkportal.celery import app, node_queue
from tests.conftest import free_port
from tests.servers.conftest import FAKE_VLLM, engine_pids, wait_status


def _worker():
    return start_worker(app, queues=["default", node_queue(settings.NODE_NAME)], perform_ping_check=False,
                        pool="threads", concurrency=4, shutdown_timeout=20)


def test_a_crashed_engine_fails_and_restarts_by_policy(celery_worker, node, make_profile, operator_user, settings):
    settings.PORTAL_RESTART_BACKOFF_S = 0.0
    profile = make_profile(extra_env={"FAKE_VLLM_EXIT_AFTER_S": "2", "FAKE_VLLM_STARTUP_DELAY_S": "0.1"})
    server = services.server_start(user=operator_user, profile=profile, node=node, restart_policy="on-failure")
    server = wait_status(server, "ready")
    first_pid = server.pid
    time.sleep(2.5)  # the engine dies
    report = reconcile.node_reconcile(node=node)
    server.refresh_from_db()
    assert report["failed"] == [server.pk]
    assert server.status in ("failed", "queued")
    assert "The engine process (pid" in server.events.filter(new="failed").first().reason
    report = reconcile.node_reconcile(node=node)
    server = wait_status(server, "starting", "ready")
    assert server.restart_attempts == 1 and report["restarted"] in ([server.pk], [])
    server = wait_status(server, "ready")
    assert server.pid != first_pid
    Server.objects.filter(pk=server.pk).update(restart_policy="never")
    services.server_stop(user=operator_user, server=server)
    wait_status(server, "stopped", "failed")


def test_a_vllm_the_portal_did_not_start_is_listed_as_external_and_can_be_adopted(celery_worker, node,
                                                                                    operator_user):
    port = free_port()
    stray = subprocess.Popen([FAKE_VLLM, "serve", "org/stray-model", "--port", str(port), "--served-model-name",
                              "stray"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("SPARKPORTAL_")})
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        report = reconcile.node_reconcile(node=node)
        external = Server.objects.get(node=node, pid=stray.pid)
        assert external.pk in report["external"]
        assert (external.status, external.served_model_name, external.port) == ("external", "stray", port)
        assert external.status_reason.startswith(f"found running as pid {stray.pid}: ")
        assert reconcile.node_reconcile(node=node)["external"] == []  # listed once

        adopted = services.server_adopt(user=operator_user, server=external)
        assert adopted.status == "ready"
        services.server_stop(user=operator_user, server=adopted)
        wait_status(adopted, "stopped")
        assert stray.wait(timeout=5) is not None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stray.pid, signal.SIGKILL)
        stray.wait(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_a_restarted_worker_re_adopts_running_servers(node, make_profile, operator_user, caplog):
    caplog.set_level(logging.INFO, logger="servers.reconcile")
    with _worker():
        server = wait_status(services.server_start(user=operator_user, profile=make_profile(), node=node), "ready")
    pids = engine_pids(server)
    assert len(pids) == 3  # the worker is gone, the engine (API server, resource tracker, EngineCore) is not
    caplog.clear()
    with _worker():
        deadline = time.monotonic() + 10
        while "at worker start" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"'running': [{server.pk}]" in caplog.text
        server.refresh_from_db()
        assert server.status == "ready" and engine_pids(server) == pids
        assert not Server.objects.filter(status="external", pid=server.pid).exists()
        services.server_stop(user=operator_user, server=server)
        wait_status(server, "stopped")
    assert engine_pids(server) == []
