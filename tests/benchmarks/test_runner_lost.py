"""A run whose worker dies mid-way: the lease runs out, the reconcile fails it and stops its servers."""
import os
import re
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from benchmarks import services
from benchmarks.models import BenchmarkResult, BenchmarkRun
from benchmarks.tasks import benchmark_runs_reconcile_task
from servers import processes
from servers.models import Server
from tests.benchmarks.conftest import start_worker_process, wait_for
from tests.benchmarks.factories import RunFactory, ServerFactory, SummaryFactory
from tests.benchmarks.test_cancel import bench_tools, slow_plan
from tests.benchmarks.test_run_plan import finished

LEASE_S = 4.0


@pytest.mark.django_db
def test_the_reconcile_fails_only_runs_whose_lease_expired_and_is_safe_to_run_twice(operator_user, settings):
    settings.BENCHMARK_LEASE_S = 120
    long_ago = timezone.now() - timedelta(minutes=10)
    lost = RunFactory(status="running", runner="celery@spark1 pid 4242", heartbeat_at=long_ago,
                      started_at=long_ago, requested_by=operator_user, finished_at=None)
    server = ServerFactory(status="queued", started_by=operator_user)
    SummaryFactory(run=lost, status="starting", server=server, started_server=True, profile=server.profile)
    alive = RunFactory(status="running", runner="celery@spark1 pid 5151", heartbeat_at=timezone.now(),
                       started_at=long_ago, finished_at=None)
    before_leases = RunFactory(status="running", heartbeat_at=None, started_at=long_ago, finished_at=None)

    assert {r.pk for r in services.runs_reconcile()} == {lost.pk, before_leases.pk}
    assert services.runs_reconcile() == []

    lost.refresh_from_db()
    seen = timezone.localtime(long_ago)
    assert lost.status == "failed"
    assert lost.message == (f"The worker running this benchmark (celery@spark1 pid 4242) stopped at "
                            f"{seen:%Y-%m-%d %H:%M:%S %Z}; servers it started were stopped: "
                            f"#{server.pk} {server.served_model_name} on bench-node.")
    assert lost.summaries.get().status == "failed"
    assert Server.objects.get(pk=server.pk).status == "stopped"  # a queued server leaves the queue at once
    before_leases.refresh_from_db()
    assert before_leases.message.endswith("; it had no server of its own running.")
    alive.refresh_from_db()
    assert alive.status == "running"
    assert AuditEvent.objects.filter(action="benchmarks.run.failed", actor_name="benchmark reconcile").count() == 2


def test_a_run_whose_worker_is_killed_is_failed_and_its_server_stopped(request, bench_node, bench_profile,
                                                                      operator_user, settings, tmp_path):
    settings.BENCHMARK_LEASE_S = LEASE_S
    bench_node.stop_timeout_s = 1  # the engine still streams to the orphaned tool: don't wait out a grace
    bench_node.save(update_fields=["stop_timeout_s"])
    profile = bench_profile("glm47-flash", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1",
                                                      "FAKE_VLLM_TOKEN_DELAY_S": "0.05"})
    worker = start_worker_process(tmp_path / "worker.log", PORTAL_BENCHMARK_HEARTBEAT_S="0.5",
                                  PORTAL_BENCHMARK_LEASE_S=str(LEASE_S))
    try:
        run = services.run_create(plan=slow_plan(operator_user, profile, "killed"), actor=operator_user)
        wait_for(lambda: BenchmarkResult.objects.filter(summary__run=run, status="running").exists()
                 and bench_tools(), timeout=90, what="a repeat to be running in the worker process")
        run.refresh_from_db()
        assert re.fullmatch(r"\S+@\S+ pid \d+", run.runner), run.runner
        beat = run.heartbeat_at
        wait_for(lambda: BenchmarkRun.objects.get(pk=run.pk).heartbeat_at > beat, timeout=10,
                 what="the runner to renew its lease")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    run.refresh_from_db()
    server = Server.objects.get(pk=run.summaries.get().server_id)
    assert run.status == "running"  # nobody told the database
    assert server.status == "ready" and processes.alive(server.pid, server.pid_started_at)
    assert services.runs_reconcile() == []  # the lease has not run out yet

    request.getfixturevalue("celery_worker")  # the host's worker comes back; beat fires the reconcile
    wait_for(lambda: timezone.now() - BenchmarkRun.objects.get(pk=run.pk).heartbeat_at
             > timedelta(seconds=LEASE_S), timeout=LEASE_S + 2, what="the lease to run out")
    benchmark_runs_reconcile_task.delay()
    benchmark_runs_reconcile_task.delay()
    run = wait_for(lambda: finished(run), timeout=20, what="the reconcile to fail the run")

    seen = timezone.localtime(run.heartbeat_at)
    assert run.status == "failed"
    assert run.message == (f"The worker running this benchmark ({run.runner}) stopped at "
                           f"{seen:%Y-%m-%d %H:%M:%S %Z}; servers it started were stopped: "
                           f"#{server.pk} glm47-flash on {bench_node.name}.")
    summary = run.summaries.get()
    assert summary.status == "failed" and summary.message.startswith("the worker running this benchmark (")
    assert list(summary.results.values_list("status", flat=True)) == ["failed"]
    wait_for(lambda: Server.objects.get(pk=server.pk).status == "stopped", timeout=30, what="the server to stop")
    assert not processes.alive(server.pid, server.pid_started_at)
    assert AuditEvent.objects.filter(action="benchmarks.run.failed", target_id=str(run.pk)).count() == 1

    # The runner task comes back (acks_late redelivery): it does not take the run over.
    assert services.run_execute(run_id=run.pk, worker="celery@elsewhere") is None
    assert BenchmarkRun.objects.get(pk=run.pk).status == "failed"
    assert Server.objects.filter(profile=profile).count() == 1
    # The tool the dead worker started ends on its own once the server is gone.
    wait_for(lambda: bench_tools() == [], timeout=30, what="the orphaned bench tool to exit")


@pytest.mark.django_db
def test_a_runner_that_lost_its_lease_stops_its_work(operator_user):
    run = RunFactory(status="running", runner="celery@a pid 1", heartbeat_at=timezone.now(), finished_at=None)
    assert services.lease.lease_renew(run_id=run.pk, runner="celery@a pid 1")
    assert not services.runs.run_should_stop(run_id=run.pk)
    BenchmarkRun.objects.filter(pk=run.pk).update(status="failed")
    assert not services.lease.lease_renew(run_id=run.pk, runner="celery@a pid 1")
    assert services.runs.run_should_stop(run_id=run.pk)
    assert not services.lease.lease_renew(run_id=RunFactory(status="running").pk, runner="celery@a pid 1")
