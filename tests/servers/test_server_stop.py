"""server_stop: SIGTERM to the group, SIGKILL after the node's timeout, then the marker sweep."""
import os
import signal
import sys
import time

import psutil
from celery.signals import task_postrun

from servers import logs, reconcile, services, tasks
from tests.servers.conftest import FAKE_VLLM, engine_pids, wait_status


def _engine_core(pids: list[int]) -> list[int]:
    return [pid for pid in pids if "VLLM::EngineCore" in " ".join(psutil.Process(pid).cmdline())]


def test_a_parent_that_ignores_sigterm_is_killed_after_the_timeout(celery_worker, node, make_profile,
                                                                    operator_user):
    node.stop_timeout_s = 1
    node.save()
    profile = make_profile(extra_env={"FAKE_VLLM_IGNORE_SIGTERM": "1", "FAKE_VLLM_STARTUP_DELAY_S": "0.1"})
    server = wait_status(services.server_start(user=operator_user, profile=profile, node=node), "ready")
    services.server_stop(user=operator_user, server=server)
    server = wait_status(server, "stopped")
    assert server.status_reason.startswith("no exit within 1 s after SIGTERM: SIGKILL")
    assert engine_pids(server) == []


def _sigkill_api_alone(server) -> None:
    os.kill(server.pid, signal.SIGKILL)  # the API server dies; its EngineCore keeps the (GPU) memory
    deadline = time.monotonic() + 5
    while psutil.pid_exists(server.pid) and psutil.Process(server.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_sigkilled_api_server_leaves_survivors_that_the_reconcile_kills(celery_worker, node, make_profile,
                                                                          operator_user):
    server = wait_status(services.server_start(user=operator_user, profile=make_profile(), node=node), "ready")
    pids = engine_pids(server)
    survivors = [pid for pid in pids if pid != server.pid]
    assert len(survivors) == 2 and len(_engine_core(pids)) == 1

    _sigkill_api_alone(server)
    # As real vLLM 0.26 on an H100: EngineCore and resource tracker live on, reparented, still in the dead API
    # server's process group and session.
    assert engine_pids(server) == survivors
    for pid in survivors:
        assert psutil.Process(pid).ppid() != server.pid
        assert os.getpgid(pid) == server.pid and os.getsid(pid) == os.getsid(server.pid)

    report = reconcile.node_reconcile(node=node)
    server.refresh_from_db()
    assert report["failed"] == [server.pk] and server.status == "failed"
    assert server.status_reason == (f"The engine process (pid {server.pid}) is gone. It left 2 process(es) with its "
                                    "marker running (its EngineCore keeps the GPU memory); they were killed.")
    assert engine_pids(server) == []


def test_an_engine_core_in_its_own_session_is_found_by_its_marker(celery_worker, node, make_profile, operator_user):
    profile = make_profile(extra_env={"FAKE_VLLM_ENGINE_SETSID": "1", "FAKE_VLLM_STARTUP_DELAY_S": "0.1"})
    server = wait_status(services.server_start(user=operator_user, profile=profile, node=node), "ready")
    engine = _engine_core(engine_pids(server))
    assert len(engine) == 1 and os.getpgid(engine[0]) != server.pid  # it left the server's process group

    _sigkill_api_alone(server)
    assert engine[0] in engine_pids(server)

    report = reconcile.node_reconcile(node=node)
    server.refresh_from_db()
    assert report["failed"] == [server.pk] and server.status == "failed"
    assert server.status_reason.startswith(f"The engine process (pid {server.pid}) is gone. It left 2 process(es)")
    assert engine_pids(server) == []


def test_stopping_one_server_leaves_the_other_engine_alive(celery_worker, node, make_profile, operator_user):
    first = services.server_start(user=operator_user, profile=make_profile("coder"), node=node)
    second = services.server_start(user=operator_user, profile=make_profile("reranker", gpu_memory_utilization=0.15),
                                   node=node)
    first, second = wait_status(first, "ready"), wait_status(second, "ready")
    # Starts on one node are serialized: the second began only once the first was ready.
    assert second.started_at >= first.ready_at
    second_pids = engine_pids(second)
    assert len(_engine_core(second_pids)) == 1

    services.server_stop(user=operator_user, server=first)
    wait_status(first, "stopped")
    assert engine_pids(first) == []
    assert engine_pids(second) == second_pids
    services.server_stop(user=operator_user, server=second)
    wait_status(second, "stopped")


def _gated_vllm(tmp_path, gate) -> str:
    """The fake vLLM behind a Python that waits for `gate` to exist: the launch's version probe (which runs in the
    engine's Python before the spawn, seconds for a real vLLM) holds the start between its claim and its spawn."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text(f'#!/bin/sh\nexec {FAKE_VLLM} "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n'
                                    f'exec {sys.executable} "$@"\n')
    for script in ("vllm", "python"):
        (bin_dir / script).chmod(0o755)
    return str(bin_dir / "vllm")


def test_a_stop_during_the_launch_kills_what_the_launch_spawned(celery_worker, node, make_profile, operator_user,
                                                                tmp_path):
    gate = tmp_path / "gate"
    node.vllm_executable = _gated_vllm(tmp_path, gate)
    node.save(update_fields=["vllm_executable"])
    launches_done = []

    def launch_done(sender=None, args=None, **kwargs):
        if sender.name == tasks.server_launch_task.name:
            launches_done.extend(args)

    task_postrun.connect(launch_done, weak=False)
    try:
        server = wait_status(services.server_start(user=operator_user, profile=make_profile(), node=node), "starting")
        services.server_stop(user=operator_user, server=server)
        server = wait_status(server, "stopped")  # the stop found no process yet
        gate.touch()  # the launch goes on and spawns the engine
        deadline = time.monotonic() + 30
        while server.pk not in launches_done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.pk in launches_done, "the launch task did not finish"
    finally:
        gate.touch()
        task_postrun.disconnect(launch_done)
    log_text = logs.log_path(server.pk).read_text()
    assert "starting server #" in log_text and "was stopped while it was launching" in log_text
    assert engine_pids(server) == []
    server.refresh_from_db()
    assert (server.status, server.pid) == ("stopped", None)
