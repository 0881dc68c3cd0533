"""A start whose worker's pool process is killed while it watches: the start's lease runs out, and the periodic
reconcile adopts the engine if it answers or fails the start and stops it; the node's queue goes on either way."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from django.conf import settings

from servers import services
from servers.models import Server
from servers.tasks import server_reconcile_fanout_task
from tests.conftest import subprocess_env
from tests.servers.conftest import engine_pids, wait_status

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 3


@pytest.fixture
def worker_process(transactional_db, node, tmp_path):
    """A real prefork worker of this node with one pool process, whose start leases last LEASE_S."""
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q", f"default,node.{settings.NODE_NAME}",
             "-P", "prefork", "-c", "1", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=subprocess_env(PORTAL_SERVER_START_LEASE_S=str(LEASE_S)), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    # Its start-up reconcile must be done, or it would find the start below and watch it again.
    deadline = time.monotonic() + 60
    while "reconciled at worker start" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _kill_pool_process(worker: subprocess.Popen) -> None:
    """SIGKILL the pool process that runs the launch (the worker's only one); the main process lives on."""
    pool = psutil.Process(worker.pid).children()
    assert len(pool) == 1, pool
    pool[0].kill()
    pool[0].wait(10)


def _reconcile_until(server: Server, *statuses: str, timeout: float = 60.0) -> Server:
    """Send the periodic reconcile (as beat does, only more often) until the server reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server_reconcile_fanout_task.delay()
        with contextlib.suppress(AssertionError):
            return wait_status(server, *statuses, timeout=1.0)
    raise AssertionError(f"server #{server.pk} stayed {server.status} ({server.status_reason}), wanted {statuses}")


def _answers(server: Server) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200
    return False


def _start_and_kill_its_watcher(worker, node, profile, next_profile, user) -> tuple[Server, Server]:
    """Start `profile`, queue `next_profile` behind it, and kill the pool process watching the first start."""
    server = services.server_start(user=user, profile=profile, node=node)
    deadline = time.monotonic() + 60
    while not (server.status == "starting" and server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        server.refresh_from_db()
    assert server.status == "starting" and server.pid, server.status_reason
    waiting = services.server_start(user=user, profile=next_profile, node=node)
    _kill_pool_process(worker)
    return server, waiting


def test_an_engine_whose_watcher_was_killed_is_adopted_once_it_answers(worker_process, node, make_profile,
                                                                        operator_user):
    slow = make_profile("slow-start", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "3"})
    server, waiting = _start_and_kill_its_watcher(worker_process, node, slow, make_profile(), operator_user)
    pid = server.pid
    deadline = time.monotonic() + 60  # nobody watches it now; the reconcile comes only once it answers
    while not _answers(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _answers(server)

    server = _reconcile_until(server, "ready", "failed")
    assert server.status == "ready", server.status_reason
    assert server.pid == pid  # the same engine, never spawned twice
    assert "adopted" in server.events.filter(new="ready").get().reason
    assert wait_status(waiting, "ready", "failed", timeout=60).status == "ready"  # the node's queue went on

    for live in (server, waiting):
        services.server_stop(user=operator_user, server=live)
    for live in (server, waiting):
        wait_status(live, "stopped", timeout=30)


def test_an_engine_whose_watcher_was_killed_is_stopped_when_the_lease_runs_out(worker_process, node, make_profile,
                                                                               operator_user):
    never_ready = make_profile("never-ready", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "600"})
    server, waiting = _start_and_kill_its_watcher(worker_process, node, never_ready, make_profile(), operator_user)
    assert engine_pids(server)

    server = _reconcile_until(server, "ready", "failed")
    assert (server.status, server.failure_code) == ("failed", "watch_lost"), server.status_reason
    assert "stopped watching it" in server.status_reason
    deadline = time.monotonic() + 30  # the row is failed first, then its engine is stopped
    while engine_pids(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine_pids(server) == []
    assert wait_status(waiting, "ready", "failed", timeout=60).status == "ready", waiting.status_reason

    services.server_stop(user=operator_user, server=waiting)
    wait_status(waiting, "stopped", timeout=30)
