"""Workloads, plans and their schedules."""
import json

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import User
from accounts.services import audit_record
from benchmarks.models import BenchmarkPlan, PlanEntry, Workload
from engines import bench_cli
from models_registry.models import ModelProfile
from nodes.models import Node
from sparkportal.exceptions import ValidationFailed

SCHEDULED_TASK = "benchmarks.tasks.benchmark_plan_scheduled_task"


def _clean(obj: models.Model) -> None:
    """full_clean, with Django's field errors turned into one sentence that names the fields."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        parts = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
        raise ValidationFailed("Fix these fields — " + "; ".join(parts)) from None


WORKLOAD_FIELDS = ("dataset_name", "input_len", "output_len", "num_prompts", "request_rate", "burstiness",
                   "max_concurrency", "seed", "temperature", "backend", "extra_args")


@transaction.atomic
def workload_save(*, actor: User, name: str, workload: Workload | None = None, ip: str | None = None,
                  **fields) -> Workload:
    """Create a workload (or update `workload`); extra flags are checked against vllm bench serve's."""
    unknown = set(fields) - set(WORKLOAD_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown workload fields: {', '.join(sorted(unknown))}.")
    try:
        bench_cli.check_extra_args(fields.get("extra_args", workload.extra_args if workload else ""))
    except bench_cli.FlagError as exc:
        raise ValidationFailed(str(exc), code="unknown_flag") from None
    created = workload is None
    workload = workload or Workload(created_by=actor)
    workload.name = name
    for key, value in fields.items():
        setattr(workload, key, value)
    if workload.dataset_name != "random":
        raise ValidationFailed(f"Dataset {workload.dataset_name!r} is not supported: use `random`, whose token "
                               "counts are the same for every tokenizer (the field notes' reason to skip ShareGPT).")
    _clean(workload)
    workload.save()
    audit_record(actor=actor, action="benchmarks.workload.created" if created else "benchmarks.workload.updated",
                 target=workload, ip=ip, details=workload.as_config())
    return workload


def workload_default(*, actor: User | None = None) -> Workload:
    """The field notes' fixed workload: random 512 in / 256 out, 100 prompts, rate inf, seed 0."""
    workload, _ = Workload.objects.get_or_create(name="fixed-512-256", defaults={"created_by": actor})
    return workload


def _plan_node(name: str) -> Node | None:
    """The node a plan names, or None for the default (this host's node); a clear error otherwise."""
    from django.conf import settings

    name = (name or "").strip()
    if not name:
        return None
    node = Node.objects.filter(name=name).first()
    if node is None:
        known = ", ".join(Node.objects.order_by("name").values_list("name", flat=True))
        raise ValidationFailed(
            f"Node {name!r} is not registered: "
            + (f"pick one of {known}" if known else "no node is registered yet (a node registers when its "
               "worker starts)")
            + f", or leave the node empty to start the servers on this host's node ({settings.NODE_NAME}).",
            code="unknown_node")
    return node


@transaction.atomic
def plan_save(*, actor: User, name: str, workload: Workload, profiles: list[ModelProfile],
              plan: BenchmarkPlan | None = None, node: str | None = None, ip: str | None = None,
              **fields) -> BenchmarkPlan:
    """Create or update a plan; `profiles` are benchmarked in the given order.

    `node` names the node whose GPUs the plan's servers start on ("" = this host's node, the
    default; None keeps what an existing plan has).
    """
    if not profiles:
        raise ValidationFailed("A plan needs at least one profile to benchmark.")
    if len({p.pk for p in profiles}) != len(profiles):
        raise ValidationFailed("A profile appears twice in the plan: list each profile once.")
    created = plan is None
    plan = plan or BenchmarkPlan(created_by=actor)
    plan.name = name
    plan.workload = workload
    if node is not None:
        plan.node = _plan_node(node)
    for key, value in fields.items():
        if key not in {"description", "warmups", "repeats", "statistic", "tool", "keep_results", "only_if_idle",
                       "idle_minutes", "schedule_jitter_minutes"}:
            raise ValidationFailed(f"Unknown plan field {key!r}.")
        setattr(plan, key, value)
    _clean(plan)
    plan.save()
    PlanEntry.objects.filter(plan=plan).delete()
    PlanEntry.objects.bulk_create([PlanEntry(plan=plan, profile=p, position=i) for i, p in enumerate(profiles)])
    audit_record(actor=actor, action="benchmarks.plan.created" if created else "benchmarks.plan.updated",
                 target=plan, ip=ip, details={"name": name, "workload": workload.name,
                                              "profiles": [p.name for p in profiles],
                                              "node": plan.node.name if plan.node_id else "", **fields})
    return plan


@transaction.atomic
def plan_delete(*, plan: BenchmarkPlan, actor: User, ip: str | None = None) -> None:
    plan_schedule_clear(plan=plan, actor=actor, ip=ip)
    audit_record(actor=actor, action="benchmarks.plan.deleted", target=plan, ip=ip, details={"name": plan.name})
    plan.delete()


def _crontab_field(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value or " " in value:
        raise ValidationFailed(f"The schedule's {what} must be a crontab field such as `4`, `*/2` or `sun`.")
    return value


@transaction.atomic
def plan_schedule_set(*, plan: BenchmarkPlan, actor: User, minute: str = "0", hour: str = "4",
                      day_of_week: str = "sun", day_of_month: str = "*", month_of_year: str = "*",
                      jitter_minutes: int | None = None, only_if_idle: bool | None = None,
                      ip: str | None = None) -> BenchmarkPlan:
    """Run the plan on a crontab (default Sunday 04:00) in the portal's time zone.

    Missed runs catch up once: beat compares with the task's last run, so a run due while beat
    was down fires when it comes back (systemd's Persistent=true). django-celery-beat loads a
    crontab with a plain hour only while its clock is within two hours of that hour (hour 4 always),
    so a missed 10:00 run fires when beat next nears 10:00, at the latest a day later. The random
    delay is applied by the scheduled task itself (RandomizedDelaySec).
    """
    from django.conf import settings

    fields = {"minute": _crontab_field(minute, "minute"), "hour": _crontab_field(hour, "hour"),
              "day_of_week": _crontab_field(day_of_week, "day of week"),
              "day_of_month": _crontab_field(day_of_month, "day of month"),
              "month_of_year": _crontab_field(month_of_year, "month")}
    crontab, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=settings.TIME_ZONE)
    try:
        crontab.schedule.remaining_estimate(timezone.now())
    except (ValueError, KeyError) as exc:
        raise ValidationFailed(f"The schedule is not a valid crontab ({exc}).") from None
    task = plan.schedule or PeriodicTask(name=f"benchmark plan {plan.name} #{plan.pk}")
    task.task = SCHEDULED_TASK
    task.crontab = crontab
    task.interval = None
    task.args = json.dumps([plan.pk])
    task.queue = "default"
    task.enabled = True
    task.last_run_at = task.last_run_at or timezone.now()  # no immediate "catch-up" at creation
    task.save()
    plan.schedule = task
    if jitter_minutes is not None:
        plan.schedule_jitter_minutes = jitter_minutes
    if only_if_idle is not None:
        plan.only_if_idle = only_if_idle
    plan.save(update_fields=["schedule", "schedule_jitter_minutes", "only_if_idle"])
    audit_record(actor=actor, action="benchmarks.plan.scheduled", target=plan, ip=ip,
                 details={**fields, "jitter_minutes": plan.schedule_jitter_minutes,
                          "only_if_idle": plan.only_if_idle})
    return plan


@transaction.atomic
def plan_schedule_clear(*, plan: BenchmarkPlan, actor: User, ip: str | None = None) -> BenchmarkPlan:
    if plan.schedule_id:
        PeriodicTask.objects.filter(pk=plan.schedule_id).delete()
        plan.schedule = None
        plan.save(update_fields=["schedule"])
        audit_record(actor=actor, action="benchmarks.plan.unscheduled", target=plan, ip=ip, details={})
    return plan
