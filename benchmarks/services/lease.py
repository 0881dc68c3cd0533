"""A running benchmark's lease, and the reconcile that ends runs whose worker is gone.

The runner renews `heartbeat_at` from a thread while it lives. When the worker dies (killed, host
rebooted, out of memory) nobody renews it; the periodic reconcile then fails the run with a reason
in plain words and stops the servers the run started, so neither the run nor its GPUs stay taken.

A redelivered runner task (acks_late) never takes such a run over: its claim needs `queued`, so it
does nothing. Taking over would mean re-attaching to half-finished repeats and to servers started
by a dead worker; a failed run with its servers stopped is what a person can trust and re-run.
"""
import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.services import audit_record
from benchmarks import events
from benchmarks.models import BenchmarkResult, BenchmarkRun, BenchmarkSummary
from benchmarks.services.runs import acting_user
from servers import services as server_services
from servers.models import Server

log = logging.getLogger(__name__)
UNFINISHED = ("pending", "starting", "running")


def runner_name(worker: str = "") -> str:
    """Who runs a benchmark: the Celery worker's name (or this host) and the process id."""
    return f"{worker or socket.gethostname()} pid {os.getpid()}"


def lease_renew(*, run_id: int, runner: str) -> bool:
    """Renew the heartbeat; False once the run is no longer this runner's running run."""
    return bool(BenchmarkRun.objects.filter(pk=run_id, status=BenchmarkRun.Status.RUNNING, runner=runner).update(
        heartbeat_at=timezone.now()))


class Lease:
    """Keeps a run's heartbeat fresh from a thread for as long as the runner's process lives.

    A thread, not the runner's own loops: a long blocking step (a server stop waiting out its
    timeout, a slow HTTP call) must not look like a dead worker. `lost` turns true when the
    reconcile ended the run meanwhile (a worker frozen longer than the lease).
    """

    def __init__(self, *, run_id: int, runner: str):
        self.run_id, self.runner = run_id, runner
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"benchmark-lease-{run_id}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=settings.BENCHMARK_HEARTBEAT_S + 5)

    def _loop(self) -> None:
        try:
            while not self._done.wait(settings.BENCHMARK_HEARTBEAT_S):
                try:
                    if not lease_renew(run_id=self.run_id, runner=self.runner):
                        self.lost = True
                        return
                except Exception:  # noqa: BLE001 - a database hiccup: try again at the next beat
                    log.exception("could not renew the lease of benchmark run %s", self.run_id)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection


def _expired(now: datetime) -> Q:
    cutoff = now - timedelta(seconds=settings.BENCHMARK_LEASE_S)
    # A run claimed before runs had heartbeats counts from its start.
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def runs_reconcile() -> list[BenchmarkRun]:
    """Fail every running run whose lease expired and stop the servers it started. Safe to run twice.

    1. Find running runs whose heartbeat is older than the lease.
    2. Fail each with a conditional UPDATE that repeats the expiry test: a runner that renewed
       meanwhile keeps its run, and a second reconcile (or a second beat) updates nothing.
    3. Fail its unfinished profiles and repeats, stop its servers, audit, tell the page.
    """
    failed = []
    for run in BenchmarkRun.objects.filter(_expired(timezone.now()), status=BenchmarkRun.Status.RUNNING):
        ended = _fail_lost(run)
        if ended is not None:
            failed.append(ended)
    return failed


@transaction.atomic
def _fail_lost(run: BenchmarkRun) -> BenchmarkRun | None:
    now = timezone.now()
    last_seen = run.heartbeat_at or run.started_at
    who = f" ({run.runner})" if run.runner else ""
    lost = f"the worker running this benchmark{who} stopped at {timezone.localtime(last_seen):%Y-%m-%d %H:%M:%S %Z}"
    if not BenchmarkRun.objects.filter(_expired(now), pk=run.pk, status=BenchmarkRun.Status.RUNNING).update(
            status=BenchmarkRun.Status.FAILED, finished_at=now, message=lost):
        return None
    BenchmarkSummary.objects.filter(run=run, status__in=UNFINISHED).update(
        status=BenchmarkSummary.Status.FAILED, message=lost, finished_at=now)
    BenchmarkResult.objects.filter(summary__run=run, status__in=("pending", "running")).update(
        status=BenchmarkResult.Status.FAILED, message=lost, finished_at=now)
    stopped, kept = _stop_servers(run)
    if kept:
        tail = f"; servers it started could not be stopped: {'; '.join(kept)}"
    elif stopped:
        tail = f"; servers it started were stopped: {', '.join(stopped)}"
    else:
        tail = "; it had no server of its own running"
    message = lost[0].upper() + lost[1:] + tail + "."
    BenchmarkRun.objects.filter(pk=run.pk).update(message=message)
    run.refresh_from_db()
    audit_record(actor=None, actor_name="benchmark reconcile", action="benchmarks.run.failed", target=run,
                 details={"plan": run.plan_name, "runner": run.runner, "last_heartbeat": last_seen.isoformat(),
                          "servers_stopped": stopped, "servers_not_stopped": kept})
    transaction.on_commit(lambda: events.send_run_status(run_id=run.pk, status=run.status, message=message))
    log.warning("benchmark run %s failed: %s", run.pk, message)
    return run


def _stop_servers(run: BenchmarkRun) -> tuple[list[str], list[str]]:
    """Ask the supervisor to stop each server the run started that still runs: (stopped, not stopped)."""
    stopped, kept = [], []
    actor = acting_user(run)
    for summary in run.summaries.filter(started_server=True, server__isnull=False).select_related("server__node"):
        server = summary.server
        if server.status not in (Server.Status.QUEUED, Server.Status.STARTING, Server.Status.READY):
            continue
        label = f"#{server.pk} {server.served_model_name} on {server.node.name}"
        try:
            server_services.server_stop(user=actor, server=server)
            stopped.append(label)
        except Exception as exc:  # noqa: BLE001 - say which one is left, in words, and go on
            kept.append(f"{label} ({exc}; stop it on the Servers page)")
    return stopped, kept
