"""REST API for workloads, plans and runs: who may do what, and messages that say what to fix."""
import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import api_key_create
from benchmarks.models import BenchmarkRun
from tests.benchmarks.factories import ProfileFactory

pytestmark = pytest.mark.django_db
API = "/api/benchmarks"


def client_for(user) -> Client:
    from accounts.models import ApiKey

    _key, raw = api_key_create(owner=user, name=f"t{ApiKey.objects.count()}")
    return Client(headers={"X-API-Key": raw})


def test_an_operator_creates_a_plan_on_the_fixed_workload(operator_user):
    a, b = ProfileFactory(name="glm47-flash"), ProfileFactory(name="qwen36-35b-a3b")
    response = client_for(operator_user).post(f"{API}/plans", {"name": "weekly", "profile_ids": [b.pk, a.pk]},
                                              content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["profiles"] == ["qwen36-35b-a3b", "glm47-flash"]
    assert (body["warmups"], body["repeats"], body["statistic"], body["tool"]) == (5, 3, "median", "vllm")
    workloads = client_for(operator_user).get(f"{API}/workloads").json()
    assert [(w["name"], w["input_len"], w["output_len"], w["num_prompts"], w["request_rate"], w["seed"],
             w["temperature"]) for w in workloads] == [("fixed-512-256", 512, 256, 100, None, 0, 0.0)]
    assert AuditEvent.objects.filter(action="benchmarks.plan.created").exists()


def test_a_member_may_read_but_not_run(member_user, operator_user):
    profile = ProfileFactory()
    plan = client_for(operator_user).post(f"{API}/plans", {"name": "p", "profile_ids": [profile.pk]},
                                          content_type="application/json").json()
    member = client_for(member_user)
    assert member.get(f"{API}/plans").status_code == 200
    denied = member.post(f"{API}/plans/{plan['id']}/runs")
    assert denied.status_code == 403
    assert denied.json()["detail"] == "Only operators and admins may do this: ask an admin for the operator role."
    assert not BenchmarkRun.objects.exists()


def test_unknown_bench_flags_and_profiles_are_refused_with_a_reason(operator_user):
    client = client_for(operator_user)
    bad = client.post(f"{API}/workloads", {"name": "w", "extra_args": "--goodput ttft:500 --no-such-flag 3"},
                      content_type="application/json")
    assert bad.status_code == 400
    assert bad.json() == {"detail": "vllm bench serve does not know --no-such-flag: remove or fix them "
                                    "(see `vllm bench serve --help=all`).", "code": "unknown_flag"}
    managed = client.post(f"{API}/workloads", {"name": "w", "extra_args": "--num-prompts 5"},
                          content_type="application/json")
    assert "--num-prompts are set by the portal from the workload and plan" in managed.json()["detail"]
    ok = client.post(f"{API}/workloads", {"name": "w", "extra_args": "--goodput ttft:500", "input_len": 128},
                     content_type="application/json")
    assert ok.status_code == 201
    missing = client.post(f"{API}/plans", {"name": "p", "profile_ids": [424242]}, content_type="application/json")
    assert missing.json()["detail"] == "No model profile with id 424242: pick profiles from the Models page."
    nothing = client.post(f"{API}/plans", {"name": "p", "profile_ids": []}, content_type="application/json")
    assert nothing.json()["detail"] == "A plan needs at least one profile to benchmark."
    zero = client.post(f"{API}/plans", {"name": "p", "profile_ids": [ProfileFactory().pk], "repeats": 0},
                       content_type="application/json")
    assert zero.status_code == 400 and "repeats:" in zero.json()["detail"]


def test_cancelling_a_queued_run_and_a_finished_one(operator_user):
    client = client_for(operator_user)
    plan = client.post(f"{API}/plans", {"name": "p", "profile_ids": [ProfileFactory().pk]},
                       content_type="application/json").json()
    run = client.post(f"{API}/plans/{plan['id']}/runs").json()
    assert run["status"] == "queued" and [s["status"] for s in run["summaries"]] == ["pending"]
    cancelled = client.post(f"{API}/runs/{run['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["message"] == "cancelled by oscar before it started"
    again = client.post(f"{API}/runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["detail"] == f"Run {run['id']} is cancelled: only queued or running runs can be cancelled."
    assert AuditEvent.objects.filter(action="benchmarks.run.cancelled").count() == 1
