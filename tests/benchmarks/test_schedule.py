"""Scheduled runs through django-celery-beat, and the "only if idle" guard."""
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from accounts.models import AuditEvent
from benchmarks import services
from benchmarks.models import BenchmarkRun
from benchmarks.tasks import benchmark_plan_scheduled_task
from sparkportal.celery import app
from sparkportal.exceptions import ValidationFailed
from tests.benchmarks.conftest import wait_for
from tests.benchmarks.factories import ProfileFactory, ServerFactory


@pytest.fixture
def plan(operator_user):
    return services.plan_save(actor=operator_user, name="weekly", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash"), ProfileFactory(name="gemma4-31b-it")])


@pytest.mark.django_db
def test_a_weekly_schedule_is_a_beat_periodic_task(plan, operator_user):
    services.plan_schedule_set(plan=plan, actor=operator_user, jitter_minutes=30)
    task = PeriodicTask.objects.get(pk=plan.schedule_id)
    assert task.task == "benchmarks.tasks.benchmark_plan_scheduled_task"
    assert json.loads(task.args) == [plan.pk]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "4", "sun")
    assert task.enabled and plan.schedule_jitter_minutes == 30
    assert AuditEvent.objects.filter(action="benchmarks.plan.scheduled", target_id=str(plan.pk)).exists()
    with pytest.raises(ValidationFailed, match="The schedule's hour must be a crontab field"):
        services.plan_schedule_set(plan=plan, actor=operator_user, hour="4 5")
    services.plan_schedule_clear(plan=plan, actor=operator_user)
    assert not PeriodicTask.objects.filter(task="benchmarks.tasks.benchmark_plan_scheduled_task").exists()


@pytest.mark.django_db
def test_a_busy_box_records_a_skip_and_does_nothing_else(plan):
    server = ServerFactory(last_request_at=timezone.now() - timedelta(minutes=3))
    run = services.run_scheduled(plan=plan)
    assert run.status == BenchmarkRun.Status.SKIPPED
    assert run.message.startswith(f"skipped: busy (server {server} served a request at ")
    assert run.summaries.count() == 0
    assert AuditEvent.objects.filter(action="benchmarks.run.skipped", actor_name="schedule").exists()
    server.refresh_from_db()
    assert server.status == "ready"


@pytest.mark.django_db
def test_a_person_starting_a_server_recently_makes_the_box_busy(plan, member_user):
    ServerFactory(status="ready", started_by=member_user, started_at=timezone.now() - timedelta(minutes=10))
    assert "mia started server" in services.run_scheduled(plan=plan).message
    plan.only_if_idle = False
    plan.save()
    assert services.run_scheduled(plan=plan).status == BenchmarkRun.Status.QUEUED


@pytest.mark.django_db
def test_an_idle_box_queues_the_run(plan):
    ServerFactory(last_request_at=timezone.now() - timedelta(hours=2))
    run = services.run_scheduled(plan=plan)
    assert run.status == BenchmarkRun.Status.QUEUED and run.trigger == "schedule"
    assert [s.profile_name for s in run.summaries.all()] == ["glm47-flash", "gemma4-31b-it"]


def test_the_beat_task_skips_through_a_real_worker(celery_worker, operator_user):
    plan = services.plan_save(actor=operator_user, name="nightly", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash")], schedule_jitter_minutes=0)
    ServerFactory(status="starting")
    benchmark_plan_scheduled_task.delay(plan.pk)
    deadline = time.monotonic() + 20
    while not BenchmarkRun.objects.filter(plan=plan).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    run = BenchmarkRun.objects.get(plan=plan)
    assert run.status == "skipped" and "is starting" in run.message


def beat_due(name: str) -> bool | None:
    """What a freshly started beat (django-celery-beat's own scheduler) thinks of one entry; None: not loaded."""
    beat = DatabaseScheduler(app=app)
    try:
        entry = beat.schedule.get(name)
        return None if entry is None else entry.is_due().is_due
    finally:
        beat.close()


def test_beat_catches_up_a_missed_weekly_run_once(celery_worker, operator_user):
    plan = services.plan_save(actor=operator_user, name="weekly-catch-up", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash")])
    services.plan_schedule_set(plan=plan, actor=operator_user, jitter_minutes=0)  # Sunday 04:00
    ServerFactory(status="starting")  # busy: the caught-up run records its skip and starts nothing
    name = PeriodicTask.objects.get(pk=plan.schedule_id).name
    assert beat_due(name) is False  # just scheduled: nothing to catch up

    # The box was off over three Sundays: beat comes back to a last run three weeks old.
    PeriodicTask.objects.filter(pk=plan.schedule_id).update(last_run_at=timezone.now() - timedelta(days=21))
    beat = DatabaseScheduler(app=app)
    assert beat.schedule[name].is_due().is_due
    for _ in range(10):  # beat's own loop: tick until nothing is due
        if beat.tick() > 0:
            break
    beat.close()

    run = wait_for(lambda: BenchmarkRun.objects.filter(plan=plan).first(), timeout=20, what="the caught-up run")
    assert (run.trigger, run.status) == ("schedule", "skipped")
    assert "is starting" in run.message
    task = PeriodicTask.objects.get(pk=plan.schedule_id)
    assert task.total_run_count == 1 and timezone.now() - task.last_run_at < timedelta(minutes=1)
    assert beat_due(name) is False  # caught up once, not once per missed Sunday
    assert BenchmarkRun.objects.filter(plan=plan).count() == 1


@pytest.mark.django_db(transaction=True)  # beat closes connections it deems old, and the clock jumps
def test_a_missed_run_at_another_hour_is_caught_up_when_beat_nears_that_hour(operator_user):
    """django-celery-beat loads a crontab entry only within two hours of its hour (04:00 always):
    a Sunday 10:00 run missed while beat was down fires the next time beat's clock nears 10:00."""
    plan = services.plan_save(actor=operator_user, name="sunday-ten", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash")])
    with time_machine.travel(datetime(2026, 2, 28, 12, 0, tzinfo=UTC), tick=False):  # Saturday
        services.plan_schedule_set(plan=plan, actor=operator_user, hour="10", jitter_minutes=0)
    name = PeriodicTask.objects.get(pk=plan.schedule_id).name
    with time_machine.travel(datetime(2026, 3, 1, 15, 0, tzinfo=UTC), tick=False):  # Sunday, after the hour
        assert beat_due(name) is None
    with time_machine.travel(datetime(2026, 3, 2, 8, 30, tzinfo=UTC), tick=False):  # Monday morning
        assert beat_due(name) is True
