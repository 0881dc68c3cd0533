"""A plan runs end to end: servers through the supervisor, vllm bench serve on the node queue."""
import json
import statistics

import pytest

from accounts.models import AuditEvent
from benchmarks import services
from benchmarks.models import BenchmarkResult, BenchmarkRun
from servers import services as server_services
from servers.models import Server
from tests.benchmarks.conftest import marked_processes, wait_for

SMALL = {"input_len": 16, "output_len": 8, "num_prompts": 6}


def small_plan(actor, profiles, *, name="weekly", **fields):
    workload = services.workload_save(actor=actor, name=f"{name}-small", **SMALL)
    return services.plan_save(actor=actor, name=name, workload=workload, profiles=profiles,
                              **{"warmups": 2, "repeats": 3, **fields})


def finished(run: BenchmarkRun) -> BenchmarkRun | None:
    run.refresh_from_db()
    return run if run.is_finished else None


def test_a_plan_of_two_profiles_starts_benches_and_stops_each(celery_worker, bench_node, bench_profile,
                                                               operator_user):
    glm, qwen = bench_profile("glm47-flash"), bench_profile("qwen36-35b-a3b")
    # qwen's server already runs: the plan uses it and leaves it running.
    running = server_services.server_start(user=operator_user, profile=qwen, node=bench_node)
    wait_for(lambda: Server.objects.get(pk=running.pk).status == "ready", what="the running server")
    plan = small_plan(operator_user, [glm, qwen])

    run = services.run_create(plan=plan, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=120, what="the run to finish")

    assert run.status == "succeeded", run.message
    assert run.message == "2 of 2 profiles benchmarked"
    first, second = run.summaries.order_by("position")
    assert (first.profile_name, first.started_server, first.status) == ("glm47-flash", True, "done")
    assert (second.profile_name, second.started_server, second.status) == ("qwen36-35b-a3b", False, "done")
    assert Server.objects.get(pk=first.server_id).status == "stopped"
    assert Server.objects.get(pk=running.pk).status == "ready"
    for summary in (first, second):
        results = list(summary.results.order_by("repeat"))
        assert [r.status for r in results] == ["ok", "ok", "ok"]
        # Warm-ups inside the first repeat (the tool's --num-warmups), then steady-state repeats.
        assert [r.warmups for r in results] == [2, 0, 0]
        assert "Warming up with 2 benchmark requests" in results[0].stdout_tail
        argv = results[0].argv
        assert argv[1:3] == ["bench", "serve"] and "--save-result" in argv
        assert argv[argv.index("--temperature") + 1] == "0"
        assert argv[argv.index("--num-prompts") + 1] == "6"
        assert all(r.raw["completed"] == 6 and r.raw["total_output_tokens"] == 48 for r in results)
        for key in ("output_throughput", "total_token_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
                    "median_itl_ms", "median_e2el_ms"):
            assert getattr(summary, key) == statistics.median(r.raw[key] for r in results), key
        values = [r.raw["output_throughput"] for r in results]
        assert summary.spread_pct == pytest.approx((max(values) - min(values)) / statistics.median(values) * 100)
        assert summary.engine_version == "0.33.0" and summary.node_name == bench_node.name
        assert summary.facts["dtype"] == "bfloat16" and summary.facts["max_model_len"] == 4096
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"benchmarks.run.requested", "benchmarks.run.succeeded", "servers.server.started",
            "servers.server.stopped"} <= actions
    server_services.server_stop(user=operator_user, server=running)
    wait_for(lambda: Server.objects.get(pk=running.pk).status == "stopped", what="the stop")
    wait_for(lambda: marked_processes() == [], timeout=10, what="no engine process left")


def test_a_broken_result_file_fails_that_repeat_and_keeps_the_others(celery_worker, bench_node, bench_profile,
                                                                      operator_user, tmp_path):
    script = tmp_path / "bench-script.json"
    script.write_text(json.dumps(["ok", "truncate", "ok"]))
    bench_node.extra_env = {**bench_node.extra_env, "FAKE_VLLM_BENCH_SCRIPT": str(script)}
    bench_node.save()
    plan = small_plan(operator_user, [bench_profile("glm47-flash")], name="broken", warmups=0)

    run = services.run_create(plan=plan, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=90, what="the run to finish")

    assert run.status == "succeeded"
    summary = run.summaries.get()
    results = {r.repeat: r for r in summary.results.all()}
    assert [results[i].status for i in (1, 2, 3)] == ["ok", "failed", "ok"]
    assert results[2].message.startswith(
        f"The result file of repeat 2 (glm47-flash-repeat2-result{results[2].pk}.json) is not valid JSON (truncated")
    assert "Successful requests:" in results[2].stdout_tail  # what the tool printed is kept
    assert (summary.repeats_ok, summary.repeats_failed) == (2, 1)
    assert summary.message.startswith("Repeat 2 failed: The result file of repeat 2")
    ok = [results[1].raw["output_throughput"], results[3].raw["output_throughput"]]
    assert summary.output_throughput == pytest.approx(statistics.median(ok))
    assert BenchmarkResult.objects.filter(status="ok").count() == 2
    wait_for(lambda: marked_processes() == [], timeout=10, what="no engine process left")


def test_the_built_in_generator_benches_a_plan_too(celery_worker, bench_node, bench_profile, operator_user):
    plan = small_plan(operator_user, [bench_profile("glm47-flash")], name="builtin", tool="builtin", repeats=2,
                      warmups=1)
    run = services.run_create(plan=plan, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=90, what="the run to finish")

    assert run.status == "succeeded", run.message
    summary = run.summaries.get()
    results = list(summary.results.order_by("repeat"))
    assert [r.status for r in results] == ["ok", "ok"] and [r.warmups for r in results] == [1, 0]
    assert all(r.argv == [] and r.raw["completed"] == 6 and r.raw["total_output_tokens"] == 48 for r in results)
    assert results[0].raw["label"] == f"sparkportal-run{run.pk}-glm47-flash"
    assert summary.median_ttft_ms == statistics.median(r.raw["median_ttft_ms"] for r in results)
    assert Server.objects.get(pk=summary.server_id).status == "stopped"
    wait_for(lambda: marked_processes() == [], timeout=10, what="no engine process left")
