"""One repeat on the node (the tool or the built-in generator), and the statistic over repeats."""
import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from benchmarks import loadgen, parsing, statistics
from benchmarks.models import SUMMARY_KEYS, BenchmarkPlan, BenchmarkResult, BenchmarkSummary
from benchmarks.services.runs import run_should_stop
from engines import bench_cli, environment
from servers import processes

RESULTS_DIR = "benchmarks"


def _result_dir(run_id: int) -> Path:
    path = Path(settings.VAR_DIR) / RESULTS_DIR / f"run-{run_id}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(path: Path, *, chars: int = 6000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - chars))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _claim(result_id: int) -> BenchmarkResult | None:
    if not BenchmarkResult.objects.filter(pk=result_id, status=BenchmarkResult.Status.PENDING).update(
            status=BenchmarkResult.Status.RUNNING):
        return None
    return BenchmarkResult.objects.select_related("summary__run", "summary__server__node", "summary__profile").get(
        pk=result_id)


def _finish(result: BenchmarkResult, *, status: str, message: str = "", raw: dict | None = None,
            stdout_tail: str = "", argv: list | None = None) -> BenchmarkResult:
    # Only a running repeat: the reconcile may have failed it already (its run lost its runner).
    BenchmarkResult.objects.filter(pk=result.pk, status=BenchmarkResult.Status.RUNNING).update(
        status=status, message=message, raw=raw, stdout_tail=stdout_tail, argv=argv or result.argv,
        finished_at=timezone.now())
    result.refresh_from_db()
    return result


def repeat_execute(*, result_id: int) -> BenchmarkResult | None:
    """Run one repeat on this node and store its raw result (or why it failed).

    1. Claim the row (pending -> running); a redelivered task finds nothing to do.
    2. Run `vllm bench serve` (or the built-in generator) against the summary's server; a cancel
       of the run stops the tool at once.
    3. Parse the result file; a broken file fails this repeat only, with a message that says why.
    """
    result = _claim(result_id)
    if result is None:
        return None
    summary = result.summary
    run = summary.run
    config = run.config
    stop = lambda: run_should_stop(run_id=run.pk)  # noqa: E731
    label = f"sparkportal-run{run.pk}-{summary.profile_name}"
    if config["tool"] == BenchmarkPlan.Tool.BUILTIN:
        return _builtin(result, config, label, stop)
    server = summary.server
    node = server.node
    filename = f"{summary.profile_name}-repeat{result.repeat}-result{result.pk}.json"
    out_dir = _result_dir(run.pk)
    (out_dir / filename).unlink(missing_ok=True)
    profile = summary.profile
    model = (profile.local_path or profile.repo_id or profile.model_name) if profile else server.served_model_name
    argv = bench_cli.bench_argv(executable=node.vllm_executable or "vllm", config=config["workload"],
                                base_url=server.base_url, model=model, served_model_name=server.served_model_name,
                                tokenizer=model, warmups=result.warmups, result_dir=str(out_dir),
                                result_filename=filename, label=label)
    BenchmarkResult.objects.filter(pk=result.pk).update(argv=argv)
    log_path = out_dir / f"{filename}.log"
    env = environment.tool_env(base=dict(os.environ), node=node, hf_home=str(settings.PORTAL_WEIGHTS_DIR))
    code, stopped = processes.run_watched(argv, env=env, log_path=str(log_path), should_stop=stop,
                                          timeout=settings.BENCHMARK_REPEAT_TIMEOUT_S)
    tail = _tail(log_path)
    if stopped:
        status = BenchmarkResult.Status.CANCELLED if stop() else BenchmarkResult.Status.FAILED
        message = ("cancelled while running" if status == BenchmarkResult.Status.CANCELLED else
                   f"vllm bench serve ran longer than {settings.BENCHMARK_REPEAT_TIMEOUT_S} s and was stopped")
        return _finish(result, status=status, message=message, stdout_tail=tail, argv=argv)
    if code != 0:
        last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
        return _finish(result, status=BenchmarkResult.Status.FAILED, stdout_tail=tail, argv=argv,
                       message=f"vllm bench serve exited with status {code}: {last}")
    path = out_dir / filename
    source = f"The result file of repeat {result.repeat} ({path.name})"
    try:
        raw = parsing.parse_result_text(path.read_text(), source=source)
    except FileNotFoundError:
        return _finish(result, status=BenchmarkResult.Status.FAILED, stdout_tail=tail, argv=argv,
                       message=f"{source} was not written although vllm bench serve exited 0: check --save-result "
                               "and free disk space on the node.")
    except parsing.ResultFileError as exc:
        return _finish(result, status=BenchmarkResult.Status.FAILED, message=str(exc), stdout_tail=tail, argv=argv)
    return _finish(result, status=BenchmarkResult.Status.OK, raw=raw, stdout_tail=tail, argv=argv)


def _builtin(result: BenchmarkResult, config: dict, label: str, stop: Callable[[], bool]) -> BenchmarkResult:
    summary = result.summary
    work = config["workload"]
    spec = loadgen.LoadSpec(base_url=summary.server.base_url, model=summary.server.served_model_name,
                            backend=work["backend"], endpoint=work["endpoint"], num_prompts=work["num_prompts"],
                            input_len=work["input_len"], output_len=work["output_len"],
                            request_rate=work["request_rate"], burstiness=work["burstiness"],
                            max_concurrency=work["max_concurrency"], seed=work["seed"],
                            temperature=work["temperature"], num_warmups=result.warmups, label=label)
    try:
        raw = loadgen.run_load_sync(spec, should_stop=stop)
    except loadgen.Cancelled as exc:
        return _finish(result, status=BenchmarkResult.Status.CANCELLED, message=str(exc))
    except OSError as exc:
        return _finish(result, status=BenchmarkResult.Status.FAILED, message=f"The load generator failed: {exc}")
    if raw["completed"] == 0:
        errors = sorted({e for e in raw.get("errors", []) if e})[:3]
        return _finish(result, status=BenchmarkResult.Status.FAILED, raw=raw,
                       message="No request succeeded: " + ("; ".join(errors) or "no answer"))
    return _finish(result, status=BenchmarkResult.Status.OK, raw=raw)


def summary_compute(*, summary: BenchmarkSummary, statistic: str) -> BenchmarkSummary:
    """The plan's statistic (median by default) over the stored successful repeats, and their spread."""
    results = list(summary.results.filter(status=BenchmarkResult.Status.OK))
    failed = summary.results.exclude(status=BenchmarkResult.Status.OK).count()
    reduce = statistics.median if statistic == BenchmarkPlan.Statistic.MEDIAN else statistics.mean
    values: dict[str, float | None] = {}
    spread: dict[str, float | None] = {}
    for key in SUMMARY_KEYS:
        series = [v for v in (r.value(key) for r in results) if v is not None]
        values[key] = reduce(series) if series else None
        spread[key] = statistics.spread_pct(series)
    for key, value in values.items():
        setattr(summary, key, value)
    summary.spread = spread
    summary.spread_pct = spread.get("output_throughput")
    summary.repeats_ok = len(results)
    summary.repeats_failed = failed
    summary.completed_requests = sum(int(r.value("completed") or 0) for r in results)
    summary.failed_requests = sum(int(r.value("failed") or 0) for r in results)
    summary.save()
    return summary


@transaction.atomic
def results_prune(*, profile_id: int | None, keep: int) -> int:
    """Keep the raw files of the newest `keep` repeats per profile (the field notes' BENCH_KEEP)."""
    if profile_id is None:
        return 0
    old = list(BenchmarkResult.objects.filter(profile_id=profile_id).order_by("-created_at", "-id")
               .values_list("pk", flat=True)[keep:])
    if not old:
        return 0
    deleted, _ = BenchmarkResult.objects.filter(pk__in=old).delete()
    return deleted
