"""The runner of a plan (portal-wide work on `default`): one profile after another, each in its
own server session, the repeats on the server's node queue."""
import logging
import time

from django.conf import settings
from django.utils import timezone

from benchmarks import clients, events
from benchmarks.models import BenchmarkResult, BenchmarkRun, BenchmarkSummary
from benchmarks.services import repeats, sessions
from benchmarks.services.lease import Lease, runner_name
from benchmarks.services.runs import acting_user, cancel_requested, run_claim, run_finish, run_should_stop
from servers.models import Server
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import InvalidTransition

log = logging.getLogger(__name__)
FINISHED_RESULT = (BenchmarkResult.Status.OK, BenchmarkResult.Status.FAILED, BenchmarkResult.Status.CANCELLED)


class _Progress:
    """Current profile, repeat and an ETA from the durations seen so far."""

    def __init__(self, run: BenchmarkRun, total_profiles: int):
        self.run = run
        self.total_profiles = total_profiles
        self.repeats = run.config["repeats"]
        self.repeat_durations: list[float] = []
        self.start_durations: list[float] = []
        self.profile = ""
        self.index = 0

    def eta(self, repeat: int) -> float | None:
        if not self.repeat_durations:
            return None
        per_repeat = sum(self.repeat_durations) / len(self.repeat_durations)
        per_start = sum(self.start_durations) / len(self.start_durations) if self.start_durations else 0.0
        left_here = max(self.repeats - repeat + 1, 0) * per_repeat
        later = self.total_profiles - self.index
        return round(left_here + later * (per_start + self.repeats * per_repeat), 1)

    def send(self, *, phase: str, repeat: int = 0, message: str = "", force: bool = False) -> None:
        payload = {"run_id": self.run.pk, "status": BenchmarkRun.Status.RUNNING, "phase": phase,
                   "profile": self.profile, "profile_index": self.index, "profiles_total": self.total_profiles,
                   "repeat": repeat, "repeats": self.repeats, "eta_s": self.eta(repeat), "message": message}
        BenchmarkRun.objects.filter(pk=self.run.pk).update(progress=payload)
        events.send_run_progress(payload, force=force)


def run_execute(*, run_id: int, worker: str = "") -> BenchmarkRun | None:
    """Execute a queued run.

    1. Claim it (queued -> running) with this process as its runner; a redelivered task, a
       cancelled run or one the reconcile failed does nothing (see services/lease.py).
    2. While it works, a lease thread renews the run's heartbeat.
    3. For each profile: get a server (reuse a ready one or start one), wait for ready, run the
       repeats (warm-ups inside the first), summarise, stop the server if the run started it.
    4. Finish: cancelled if asked, failed if no profile produced a result, else succeeded.
    Whatever happens, every server this run started is stopped before it returns.
    """
    runner = runner_name(worker)
    if not run_claim(run_id=run_id, runner=runner):
        return None
    run = BenchmarkRun.objects.select_related("requested_by", "plan__created_by").get(pk=run_id)
    with Lease(run_id=run.pk, runner=runner):
        try:
            return _execute(run)
        except InvalidTransition:
            # The reconcile failed the run while this worker was cut off for longer than the lease.
            log.warning("benchmark run %s was ended by the reconcile while its runner still worked", run.pk)
            run.refresh_from_db()
            return run


def _execute(run: BenchmarkRun) -> BenchmarkRun:
    summaries = list(run.summaries.select_related("profile").order_by("position", "pk"))
    progress = _Progress(run, len(summaries))
    events.send_run_status(run_id=run.pk, status=run.status, message="running")
    try:
        for index, summary in enumerate(summaries, start=1):
            if run_should_stop(run_id=run.pk):
                break
            progress.profile, progress.index = summary.profile_name, index
            _bench_profile(run, summary, progress)
    except Exception as exc:  # noqa: BLE001 - the run must end in a final state whatever broke
        log.exception("benchmark run %s failed", run.pk)
        _stop_started(run)
        BenchmarkSummary.objects.filter(run=run, status__in=["pending", "starting", "running"]).update(
            status=BenchmarkSummary.Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        return run_finish(run=run, status=BenchmarkRun.Status.FAILED, message=f"The runner failed: {exc}")
    _stop_started(run)
    if cancel_requested(run_id=run.pk):
        BenchmarkSummary.objects.filter(run=run, status__in=["pending", "starting", "running"]).update(
            status=BenchmarkSummary.Status.CANCELLED)
        return run_finish(run=run, status=BenchmarkRun.Status.CANCELLED,
                          message="cancelled; every server the run started was stopped")
    done = run.summaries.filter(status=BenchmarkSummary.Status.DONE).count()
    if not done:
        return run_finish(run=run, status=BenchmarkRun.Status.FAILED, message="No profile produced a result.")
    failed = len(summaries) - done
    message = f"{done} of {len(summaries)} profiles benchmarked" + (f", {failed} failed" if failed else "")
    return run_finish(run=run, status=BenchmarkRun.Status.SUCCEEDED, message=message)


def _set(summary: BenchmarkSummary, **fields) -> None:
    for key, value in fields.items():
        setattr(summary, key, value)
    BenchmarkSummary.objects.filter(pk=summary.pk).update(**fields)


def _end(summary: BenchmarkSummary, **fields) -> None:
    """A profile's final state, unless the reconcile already failed it (its run lost the lease)."""
    BenchmarkSummary.objects.filter(pk=summary.pk, status__in=("pending", "starting", "running")).update(
        finished_at=timezone.now(), **fields)
    summary.refresh_from_db()


def _facts(summary: BenchmarkSummary) -> dict:
    profile = summary.profile
    if profile is None:
        return {}
    return {"dtype": profile.dtype, "max_model_len": profile.max_model_len, "quantization": profile.quantization or "",
            "kv_cache_dtype": profile.kv_cache_dtype, "tensor_parallel_size": profile.tensor_parallel_size,
            "pipeline_parallel_size": profile.pipeline_parallel_size, "placement": _placement(summary),
            "max_num_seqs": profile.max_num_seqs, "repo_id": profile.repo_id,
            "warmups": summary.run.config["warmups"], "workload": summary.run.config["workload"],
            "tool": summary.run.config["tool"]}


def _placement(summary: BenchmarkSummary) -> str:
    """Where the measured server ran: its nodes and how its GPUs split (a multi-node server lists every rank's)."""
    profile, server = summary.profile, summary.server
    ranks = list(server.group.ranks.order_by("rank").values_list("node__name", flat=True)) \
        if server is not None and server.group_id else [summary.node_name]
    return (f"{len(ranks)} node(s) ({', '.join(ranks)}), tensor parallel {profile.tensor_parallel_size}, "
            f"pipeline parallel {profile.pipeline_parallel_size}")


def _bench_profile(run: BenchmarkRun, summary: BenchmarkSummary, progress: _Progress) -> None:
    stop = lambda: run_should_stop(run_id=run.pk)  # noqa: E731
    _set(summary, status=BenchmarkSummary.Status.STARTING, started_at=timezone.now())
    progress.send(phase="starting server", force=True)
    begin = time.monotonic()
    try:
        server, started = sessions.acquire(profile=summary.profile, actor=acting_user(run),
                                           node_name=run.config.get("node", ""))
        _set(summary, server=server, started_server=started, node_name=server.node.name)
        server = sessions.wait_ready(server=server, should_stop=stop,
                                     on_wait=lambda s: progress.send(phase="starting server",
                                                                     message=f"waiting for ready, {s:.0f} s"))
    except Exception as exc:  # noqa: BLE001 - a profile that cannot start fails alone; the plan goes on
        _end(summary, status=BenchmarkSummary.Status.CANCELLED if stop() else BenchmarkSummary.Status.FAILED,
             message=str(exc))
        _stop_started(run)
        return
    if started:
        progress.start_durations.append(time.monotonic() - begin)
    version = server.engine_version or clients.engine_version(server.base_url)
    _set(summary, status=BenchmarkSummary.Status.RUNNING, engine_version=version, facts=_facts(summary))
    try:
        for repeat in range(1, run.config["repeats"] + 1):
            if stop():
                break
            progress.send(phase="benchmarking", repeat=repeat, force=True,
                          message="warm-ups and repeat 1" if repeat == 1 and run.config["warmups"] else "")
            t0 = time.monotonic()
            _one_repeat(run, summary, server, repeat, progress)
            progress.repeat_durations.append(time.monotonic() - t0)
        repeats.summary_compute(summary=summary, statistic=run.config["statistic"])
        summary.refresh_from_db()
        if stop():
            status, message = BenchmarkSummary.Status.CANCELLED, "cancelled"
        elif summary.repeats_ok:
            status, message = BenchmarkSummary.Status.DONE, _failed_repeats_note(summary)
        else:
            status, message = BenchmarkSummary.Status.FAILED, _failed_repeats_note(summary) or "no repeat succeeded"
        _end(summary, status=status, message=message)
        events.send_summary(run_id=run.pk, summary=summary_row(summary))
    finally:
        if started:
            progress.send(phase="stopping server", force=True)
            sessions.release(server=server, actor=acting_user(run))
        repeats.results_prune(profile_id=summary.profile_id, keep=run.config["keep_results"])


def _failed_repeats_note(summary: BenchmarkSummary) -> str:
    failed = list(summary.results.exclude(status=BenchmarkResult.Status.OK).order_by("repeat"))
    return " ".join(f"Repeat {r.repeat} {r.status}: {r.message}" for r in failed)


def _one_repeat(run: BenchmarkRun, summary: BenchmarkSummary, server: Server, repeat: int, progress: _Progress) -> None:
    from benchmarks.tasks import benchmark_repeat_task

    warmups = run.config["warmups"] if repeat == 1 else 0
    result = BenchmarkResult.objects.create(summary=summary, profile=summary.profile, repeat=repeat, warmups=warmups)
    enqueue_on_node(benchmark_repeat_task, server.node, result.pk)
    deadline = time.monotonic() + settings.BENCHMARK_REPEAT_TIMEOUT_S + 60
    while time.monotonic() < deadline:
        result.refresh_from_db(fields=["status"])
        if result.status in FINISHED_RESULT:
            return
        progress.send(phase="benchmarking", repeat=repeat)
        time.sleep(0.3)
    BenchmarkResult.objects.filter(pk=result.pk, status__in=["pending", "running"]).update(
        status=BenchmarkResult.Status.FAILED, finished_at=timezone.now(),
        message=f"No answer from the node's worker ({server.node.queue}) within the repeat timeout: is it running?")


def _stop_started(run: BenchmarkRun) -> None:
    """Stop every server this run started that still runs (the cancel and failure path)."""
    for summary in run.summaries.filter(started_server=True, server__isnull=False).select_related("server__node"):
        if summary.server.status not in ("stopped", "failed"):
            try:
                sessions.release(server=summary.server, actor=acting_user(run))
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("could not stop server %s of run %s", summary.server_id, run.pk)


def summary_row(summary: BenchmarkSummary) -> dict:
    from benchmarks.selectors import summary_as_dict

    return summary_as_dict(summary)
