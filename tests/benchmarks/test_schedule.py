"""Scheduled runs through django-celery-beat, and the "only if idle" guard."""
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import AuditEvent
from benchmarks import services
from benchmarks.models import BenchmarkRun
from benchmarks.tasks import benchmark_plan_scheduled_task
from sparkportal.exceptions import ValidationFailed
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
