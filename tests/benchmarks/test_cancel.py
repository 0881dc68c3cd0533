"""Cancelling a run stops the tool and every server the run started: nothing is left behind."""
import psutil

from benchmarks import services
from benchmarks.models import BenchmarkResult, BenchmarkRun, BenchmarkSummary
from servers.models import Server
from tests.benchmarks.conftest import marked_processes, wait_for
from tests.benchmarks.test_run_plan import finished


def bench_tools() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "bench" in p.info["cmdline"] and "--save-result" in p.info["cmdline"]]


def slow_plan(actor, profile, name):
    workload = services.workload_save(actor=actor, name=f"{name}-long", input_len=8, output_len=200, num_prompts=4)
    return services.plan_save(actor=actor, name=name, workload=workload, profiles=[profile], warmups=0, repeats=3)


def test_cancel_while_benchmarking_leaves_no_server(celery_worker, bench_node, bench_profile, operator_user):
    profile = bench_profile("glm47-flash", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1",
                                                      "FAKE_VLLM_TOKEN_DELAY_S": "0.05"})
    run = services.run_create(plan=slow_plan(operator_user, profile, "cancel-bench"), actor=operator_user)
    wait_for(lambda: BenchmarkResult.objects.filter(summary__run=run, status="running").exists() and bench_tools(),
             what="a repeat to be running")

    services.run_cancel(run=run, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=60, what="the cancelled run to finish")

    assert run.status == "cancelled"
    assert run.message == "cancelled; every server the run started was stopped"
    summary = run.summaries.get()
    assert summary.status == "cancelled"
    assert list(summary.results.values_list("status", flat=True)) == ["cancelled"]
    assert Server.objects.get(pk=summary.server_id).status == "stopped"
    wait_for(lambda: marked_processes() == [] and bench_tools() == [], timeout=15,
             what="no engine and no bench tool left")


def test_cancel_while_the_server_starts_stops_it(celery_worker, bench_node, bench_profile, operator_user):
    profile = bench_profile("gemma4-31b-it", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "30"})
    run = services.run_create(plan=slow_plan(operator_user, profile, "cancel-start"), actor=operator_user)
    wait_for(lambda: Server.objects.filter(profile=profile, status="starting").exists(),
             what="the server to be starting")

    services.run_cancel(run=run, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=60, what="the cancelled run to finish")

    assert run.status == BenchmarkRun.Status.CANCELLED
    summary = run.summaries.get()
    assert summary.status == BenchmarkSummary.Status.CANCELLED
    assert summary.message == "cancelled while the server was starting"
    assert Server.objects.get(profile=profile).status == "stopped"
    assert not summary.results.exists()
    wait_for(lambda: marked_processes() == [], timeout=15, what="no engine left")
