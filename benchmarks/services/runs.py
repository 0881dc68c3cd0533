"""Benchmark runs: create, cancel, the scheduled entry with its idle guard, and state changes."""
import random
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from benchmarks import events
from benchmarks.models import BenchmarkPlan, BenchmarkRun, BenchmarkSummary
from servers.models import Server
from sparkportal.celery import enqueue_default
from sparkportal.exceptions import InvalidTransition, ValidationFailed


def _config(plan: BenchmarkPlan) -> dict:
    return {"workload": plan.workload.as_config(), "warmups": plan.warmups, "repeats": plan.repeats,
            "statistic": plan.statistic, "tool": plan.tool, "keep_results": plan.keep_results,
            "node": plan.node.name if plan.node_id else ""}


def _create(*, plan: BenchmarkPlan, actor: User | None, trigger: str, status: str = BenchmarkRun.Status.QUEUED,
            message: str = "") -> BenchmarkRun:
    entries = list(plan.entries.select_related("profile"))
    if not entries:
        raise ValidationFailed(f"Plan {plan.name!r} has no profiles: add at least one before running it.")
    run = BenchmarkRun(plan=plan, plan_name=plan.name, trigger=trigger, requested_by=actor, config=_config(plan),
                       status=status, message=message)
    run.full_clean()
    run.save()
    if status == BenchmarkRun.Status.QUEUED:
        BenchmarkSummary.objects.bulk_create([
            BenchmarkSummary(run=run, profile=e.profile, profile_name=e.profile.name, position=e.position)
            for e in entries])
    return run


def _queue(run: BenchmarkRun) -> None:
    from benchmarks.tasks import benchmark_run_execute_task

    transaction.on_commit(lambda: enqueue_default(benchmark_run_execute_task, run.pk))


@transaction.atomic
def run_create(*, plan: BenchmarkPlan, actor: User | None, ip: str | None = None) -> BenchmarkRun:
    """Queue a run of `plan` now (a person asked for it; no actor = the command line)."""
    run = _create(plan=plan, actor=actor, trigger=BenchmarkRun.Trigger.MANUAL)
    audit_record(actor=actor, actor_name="" if actor else "manage.py bench", action="benchmarks.run.requested",
                 target=run, ip=ip,
                 details={"plan": plan.name, "profiles": [s.profile_name for s in run.summaries.all()],
                          **{k: v for k, v in run.config.items() if k != "workload"},
                          "workload": run.config["workload"]["name"]})
    _queue(run)
    transaction.on_commit(lambda: events.send_run_status(run_id=run.pk, status=run.status, message="queued"))
    return run


def busy_reason(*, idle_minutes: int, exclude_run_id: int | None = None) -> str:
    """Why the box is not idle, in words, or "" when it is.

    Busy means: another benchmark runs; a server is starting or stopping; a server answered a
    request in the last N minutes; or a person started a server in the last N minutes.
    """
    since = timezone.now() - timedelta(minutes=idle_minutes)
    running = BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING).exclude(pk=exclude_run_id).first()
    if running:
        return f"benchmark run {running.pk} of {running.plan_name} is running"
    moving = Server.objects.filter(status__in=["queued", "starting", "stopping", "waking"]).first()
    if moving:
        return f"server {moving} is {moving.status}"
    serving = (Server.objects.filter(status__in=["ready", "external"], last_request_at__gte=since)
               .order_by("-last_request_at").first())
    if serving:
        return f"server {serving} served a request at {serving.last_request_at:%H:%M} (idle needs {idle_minutes} min)"
    started = (Server.objects.filter(Q(started_by__isnull=False), started_at__gte=since)
               .select_related("started_by").order_by("-started_at").first())
    if started:
        return (f"{started.started_by.get_username()} started server {started} at {started.started_at:%H:%M} "
                f"(idle needs {idle_minutes} min)")
    return ""


def plan_scheduled_delay(*, plan: BenchmarkPlan) -> float:
    """Seconds to wait before a scheduled run, drawn up to the plan's jitter (RandomizedDelaySec)."""
    return random.uniform(0, plan.schedule_jitter_minutes * 60) if plan.schedule_jitter_minutes else 0.0


@transaction.atomic
def run_scheduled(*, plan: BenchmarkPlan) -> BenchmarkRun:
    """The schedule fired: run the plan, or record "skipped: busy" and do nothing else."""
    reason = busy_reason(idle_minutes=plan.idle_minutes) if plan.only_if_idle else ""
    if reason:
        run = _create(plan=plan, actor=None, trigger=BenchmarkRun.Trigger.SCHEDULE,
                      status=BenchmarkRun.Status.SKIPPED, message=f"skipped: busy ({reason})")
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
        audit_record(actor=None, actor_name="schedule", action="benchmarks.run.skipped", target=run,
                     details={"plan": plan.name, "reason": reason})
        transaction.on_commit(lambda: events.send_run_status(run_id=run.pk, status=run.status, message=run.message))
        return run
    run = _create(plan=plan, actor=None, trigger=BenchmarkRun.Trigger.SCHEDULE)
    audit_record(actor=None, actor_name="schedule", action="benchmarks.run.requested", target=run,
                 details={"plan": plan.name, "trigger": "schedule"})
    _queue(run)
    return run


@transaction.atomic
def run_cancel(*, run: BenchmarkRun, actor: User, ip: str | None = None) -> BenchmarkRun:
    """Cancel a queued run at once; ask a running one to stop (its runner stops the servers it started)."""
    now = timezone.now()
    if BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.QUEUED).update(
            status=BenchmarkRun.Status.CANCELLED, cancel_requested_at=now, finished_at=now,
            message=f"cancelled by {actor.get_username()} before it started"):
        BenchmarkSummary.objects.filter(run=run).update(status=BenchmarkSummary.Status.CANCELLED)
    elif not BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.RUNNING,
                                         cancel_requested_at__isnull=True).update(cancel_requested_at=now):
        run.refresh_from_db()
        raise InvalidTransition(f"Run {run.pk} is {run.status}: only queued or running runs can be cancelled.")
    run.refresh_from_db()
    audit_record(actor=actor, action="benchmarks.run.cancelled", target=run, ip=ip,
                 details={"plan": run.plan_name, "status": run.status})
    transaction.on_commit(lambda: events.send_run_status(
        run_id=run.pk, status=run.status, message=run.message or "cancelling: stopping what the run started"))
    return run


def run_claim(*, run_id: int, runner: str) -> bool:
    """queued -> running, taking the lease; False when another worker (or a cancel) got there first."""
    now = timezone.now()
    return bool(BenchmarkRun.objects.filter(pk=run_id, status=BenchmarkRun.Status.QUEUED).update(
        status=BenchmarkRun.Status.RUNNING, started_at=now, runner=runner[:200], heartbeat_at=now))


def acting_user(run: BenchmarkRun) -> User | None:
    """Servers are started on behalf of whoever asked; scheduled and CLI runs act for the plan's owner."""
    return run.requested_by or (run.plan.created_by if run.plan_id else None)


def run_finish(*, run: BenchmarkRun, status: str, message: str) -> BenchmarkRun:
    if status not in BenchmarkRun.TRANSITIONS[BenchmarkRun.Status.RUNNING]:
        raise InvalidTransition(f"A running run cannot become {status}.")
    updated = BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.RUNNING).update(
        status=status, message=message, finished_at=timezone.now())
    if not updated:
        raise InvalidTransition(f"Run {run.pk} is no longer running.")
    run.refresh_from_db()
    audit_record(actor=None, actor_name="benchmark runner", action=f"benchmarks.run.{status}", target=run,
                 details={"plan": run.plan_name, "message": message})
    events.send_run_status(run_id=run.pk, status=status, message=message)
    return run


def cancel_requested(*, run_id: int) -> bool:
    return BenchmarkRun.objects.filter(pk=run_id, cancel_requested_at__isnull=False).exists()


def run_should_stop(*, run_id: int) -> bool:
    """Stop the work of a run: cancel asked, or the run is no longer running (the reconcile failed it
    after its runner fell silent, so whatever of it still runs on a node must end too)."""
    return BenchmarkRun.objects.filter(pk=run_id).filter(
        Q(cancel_requested_at__isnull=False) | ~Q(status=BenchmarkRun.Status.RUNNING)).exists()
