"""Reads of the benchmarks app: lists, the comparison table with its warnings, history, export."""
import io
import json
from collections.abc import Callable

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from benchmarks.models import SUMMARY_METRICS, BenchmarkPlan, BenchmarkResult, BenchmarkRun, BenchmarkSummary, Workload
from sparkportal.lib.csvsafe import SafeDictWriter

SPREAD_LIMIT_PCT = 5.0
# Spreads that make a row untrustworthy (the field notes' noise floor is about 1%).
SPREAD_WATCHED = (("output_throughput", "output tok/s"), ("median_ttft_ms", "TTFT median"),
                  ("median_tpot_ms", "TPOT median"))


def workload_list() -> QuerySet[Workload]:
    return Workload.objects.all()


def plan_list() -> QuerySet[BenchmarkPlan]:
    return (BenchmarkPlan.objects.select_related("workload", "schedule__crontab", "node")
            .prefetch_related("entries__profile"))


def plan_get(*, plan_id: int) -> BenchmarkPlan:
    plan = plan_list().filter(pk=plan_id).first()
    if plan is None:
        raise Http404(f"No benchmark plan with id {plan_id}.")
    return plan


def plan_get_by_name_or_id(*, ref: str) -> BenchmarkPlan:
    plan = plan_list().filter(name=ref).first() or (plan_list().filter(pk=int(ref)).first() if ref.isdigit() else None)
    if plan is None:
        raise Http404(f"No benchmark plan named or numbered {ref!r}: see `python manage.py bench list`.")
    return plan


def run_list(*, plan: BenchmarkPlan | None = None) -> QuerySet[BenchmarkRun]:
    qs = BenchmarkRun.objects.select_related("plan", "requested_by").prefetch_related("summaries")
    return qs.filter(plan=plan) if plan else qs


def run_get(*, run_id: int) -> BenchmarkRun:
    run = run_list().filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No benchmark run with id {run_id}.")
    return run


def may_run(user: User) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_operator)


def summary_as_dict(summary: BenchmarkSummary) -> dict:
    row = {"id": summary.pk, "run_id": summary.run_id, "profile": summary.profile_name,
           "profile_id": summary.profile_id, "status": summary.status, "message": summary.message,
           "node": summary.node_name, "engine_version": summary.engine_version,
           "started_server": summary.started_server,
           "repeats_ok": summary.repeats_ok, "repeats_failed": summary.repeats_failed,
           "completed_requests": summary.completed_requests, "failed_requests": summary.failed_requests,
           "spread_pct": summary.spread_pct, "spread": summary.spread,
           "dtype": summary.facts.get("dtype"), "max_model_len": summary.facts.get("max_model_len"),
           "quantization": summary.facts.get("quantization"), "placement": summary.facts.get("placement"),
           "finished_at": summary.finished_at.isoformat() if summary.finished_at else None}
    for key, _label, _unit in SUMMARY_METRICS:
        row[key] = summary.metric(key)
    return row


def _differs(rows: list[BenchmarkSummary], getter: Callable[[BenchmarkSummary], object]) -> dict[str, list[str]]:
    """{value: [profiles]} when the rows disagree, else {}."""
    seen: dict[str, list[str]] = {}
    for row in rows:
        seen.setdefault(str(getter(row)), []).append(f"{row.profile_name} (run {row.run_id})")
    return seen if len(seen) > 1 else {}


def _say(seen: dict[str, list[str]]) -> str:
    return "; ".join(f"{value} for {', '.join(names)}" for value, names in seen.items())


def _placement_shape(placement: str | None) -> str:
    """A placement without its node names: the same split on other boxes is the node check's business."""
    if not placement:
        return "1 node(s)"
    head, _, rest = placement.partition(" (")
    return head + (rest.split(")", 1)[1] if ")" in rest else "")


def comparison_warnings(rows: list[BenchmarkSummary]) -> list[str]:
    """Everything that makes the rows' numbers incomparable, in words."""
    warnings: list[str] = []
    checks = (
        ("dtype", lambda s: s.facts.get("dtype") or "auto",
         "dtype differs ({}): a bfloat16 and an auto/float16 profile do not run the same kernels."),
        ("max_model_len", lambda s: s.facts.get("max_model_len") or "model default",
         "max_model_len differs ({}): it changes the KV-cache size and how many requests run at once."),
        ("quantization", lambda s: s.facts.get("quantization") or "none",
         "quantization differs ({}): compare quantized and full-precision models only on purpose."),
        ("warmups", lambda s: s.facts.get("warmups", s.run.config.get("warmups")),
         "warm-ups differ ({}): without warm-up the first repeat pays JIT and cache start-up."),
        ("workload", lambda s: json.dumps(s.run.config.get("workload", {}) | {"name": ""}, sort_keys=True),
         "the workload differs between runs: the requests were not the same."),
        ("engine", lambda s: s.engine_version or "unknown",
         "engine version differs ({}): a vLLM upgrade alone moves these numbers."),
        ("node", lambda s: s.node_name or "unknown", "the runs used different nodes ({})."),
        ("placement", lambda s: _placement_shape(s.facts.get("placement")),
         "the placement differs ({}): a model split over several nodes pays the link between them on every step "
         "(pipeline parallel helps batched traffic, tensor parallel across nodes only with a fast link)."),
        ("tool", lambda s: s.run.config.get("tool"),
         "the measuring tool differs ({}): vllm bench serve and the built-in generator."),
    )
    for _name, getter, text in checks:
        seen = _differs(rows, getter)
        if seen:
            warnings.append(text.format(_say(seen)) if "{}" in text else text)
    for row in rows:
        for key, label in SPREAD_WATCHED:
            spread = (row.spread or {}).get(key)
            if spread is not None and spread > SPREAD_LIMIT_PCT:
                warnings.append(f"{row.profile_name} (run {row.run_id}): {label} spread {spread:.1f}% between repeats "
                                f"is above {SPREAD_LIMIT_PCT:.0f}%: the box was probably not idle.")
        if row.repeats_failed:
            warnings.append(f"{row.profile_name} (run {row.run_id}): {row.repeats_failed} repeat(s) failed; "
                            f"the figures come from {row.repeats_ok}.")
        if row.failed_requests:
            warnings.append(f"{row.profile_name} (run {row.run_id}): {row.failed_requests} request(s) failed.")
    return warnings


def compare(*, run_ids: list[int]) -> dict:
    """The side-by-side table of the finished profiles of these runs, and the warnings."""
    rows = list(BenchmarkSummary.objects.filter(run_id__in=run_ids).select_related("run")
                .order_by("run_id", "position"))
    missing = sorted(set(run_ids) - {r.run_id for r in rows})
    if missing:
        raise Http404(f"No results for run(s) {', '.join(map(str, missing))}.")
    return {"rows": rows, "dicts": [summary_as_dict(r) for r in rows], "warnings": comparison_warnings(rows)}


def profile_history(*, profile_id: int, limit: int = 50) -> list[dict]:
    rows = (BenchmarkSummary.objects.filter(profile_id=profile_id, status=BenchmarkSummary.Status.DONE)
            .order_by("-finished_at")[:limit])
    return [summary_as_dict(r) for r in reversed(rows)]


def export_csv(rows: list[dict]) -> str:
    columns = ["run_id", "profile", "status", "node", "engine_version", "placement", "dtype", "max_model_len",
               "quantization",
               *[key for key, _l, _u in SUMMARY_METRICS], "spread_pct", "repeats_ok", "repeats_failed",
               "completed_requests", "failed_requests", "finished_at"]
    out = io.StringIO()
    writer = SafeDictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def export_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=1)


def profiles_by_ids(*, ids: list[int]) -> list:
    """Profiles in the order given; unknown ids are named in the error."""
    from models_registry.models import ModelProfile
    from sparkportal.exceptions import ValidationFailed

    found = {p.pk: p for p in ModelProfile.objects.filter(pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed(f"No model profile with id {', '.join(missing)}: pick profiles from the Models page.")
    return [found[i] for i in ids]


def workload_get(*, workload_id: int) -> Workload:
    workload = Workload.objects.filter(pk=workload_id).first()
    if workload is None:
        raise Http404(f"No workload with id {workload_id}.")
    return workload


def result_get(*, run_id: int, result_id: int) -> BenchmarkResult:
    from benchmarks.models import BenchmarkResult

    result = BenchmarkResult.objects.filter(pk=result_id, summary__run_id=run_id).first()
    if result is None:
        raise Http404(f"No stored repeat {result_id} in run {run_id} (older repeats are pruned).")
    return result


def parse_run_ids(text: str) -> list[int]:
    from sparkportal.exceptions import ValidationFailed

    try:
        ids = [int(part) for part in str(text).replace(" ", "").split(",") if part]
    except ValueError:
        raise ValidationFailed(f"Give run ids as numbers separated by commas, e.g. 3,7 (got {text!r}).") from None
    if not ids:
        raise ValidationFailed("Give at least one run id to compare, e.g. ?runs=3,7.")
    return ids
