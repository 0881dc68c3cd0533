"""The Benchmarks pages and the `bench` command: forms say what to fix; members read, operators run."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from benchmarks import services
from benchmarks.models import BenchmarkRun
from tests.benchmarks.factories import ProfileFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_plan_form_says_what_to_fix(operator_user):
    client = logged_in(operator_user)
    ProfileFactory(name="glm47-flash")
    page = client.post("/benchmarks/", {"name": "weekly", "warmups": 5, "repeats": 3, "tool": "vllm"},
                       headers={"HX-Request": "true"}).content.decode()
    assert 'id="plan-form"' in page and "This field is required." in page
    page = client.post("/benchmarks/workloads/", {"name": "w", "input_len": 512, "output_len": 256, "num_prompts": 100,
                                                   "burstiness": 1, "seed": 0, "backend": "openai",
                                                   "extra_args": "--max-tokens 5"}).content.decode()
    assert "vllm bench serve does not know --max-tokens: remove or fix them" in page


def test_members_see_results_but_no_run_buttons(member_user, operator_user):
    plan = services.plan_save(actor=operator_user, name="weekly", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash")])
    run = services.run_create(plan=plan, actor=operator_user)
    member = logged_in(member_user)
    index = member.get("/benchmarks/").content.decode()
    assert 'data-plan="weekly"' in index and "Run now" not in index and "New plan" not in index
    assert member.get(f"/benchmarks/runs/{run.pk}/").status_code == 200
    assert member.post(f"/benchmarks/plans/{plan.pk}/run/").status_code == 403
    assert logged_in(operator_user).post(f"/benchmarks/plans/{plan.pk}/run/").status_code == 302
    assert BenchmarkRun.objects.count() == 2


def test_the_bench_command_lists_and_queues(operator_user):
    plan = services.plan_save(actor=operator_user, name="weekly", workload=services.workload_default(),
                              profiles=[ProfileFactory(name="glm47-flash")])
    out = io.StringIO()
    call_command("bench", "run", "weekly", "--no-wait", "--user", "oscar", stdout=out)
    run = BenchmarkRun.objects.get()
    assert out.getvalue() == f"run {run.pk} of weekly queued\n"
    out = io.StringIO()
    call_command("bench", "list", stdout=out)
    assert f"{plan.pk:>4} weekly" in out.getvalue()
    assert "5 warm-ups, 3 repeats, vllm on this host: glm47-flash" in out.getvalue()
    with pytest.raises(CommandError, match="No benchmark plan named or numbered 'nightly'"):
        call_command("bench", "run", "nightly")
    with pytest.raises(CommandError, match="mia is not an operator"):
        from tests.factories import UserFactory

        UserFactory(username="mia", role="member")
        call_command("bench", "run", "weekly", "--user", "mia")
