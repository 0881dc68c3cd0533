from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import require_operator
from accounts.services import client_ip
from benchmarks import forms, selectors, services
from benchmarks.models import SUMMARY_METRICS
from sparkportal.exceptions import ApplicationError


def _index_context(request, plan_form=None, workload_form=None) -> dict:
    return {"plans": selectors.plan_list(), "runs": selectors.run_list()[:30],
            "plan_form": plan_form or forms.PlanForm(), "workload_form": workload_form or forms.WorkloadForm(),
            "schedule_form": forms.ScheduleForm(), "may_run": selectors.may_run(request.user)}


@login_required
def index(request):
    plan_form = forms.PlanForm(request.POST or None)
    if request.method == "POST":
        require_operator(request.user)
        if plan_form.is_valid():
            data = plan_form.cleaned_data
            try:
                workload = data["workload"] or services.workload_default(actor=request.user)
                plan = services.plan_save(actor=request.user, name=data["name"], workload=workload,
                                          profiles=list(data["profiles"].order_by("name")), warmups=data["warmups"],
                                          repeats=data["repeats"], tool=data["tool"],
                                          node=data["node"].name if data["node"] else "", ip=client_ip(request))
                messages.success(request, f"Plan {plan.name} saved.")
                return redirect("benchmarks-index")
            except ApplicationError as exc:
                plan_form.add_error(None, exc.message)
    template = "benchmarks/index.html#plan-form" if request.htmx else "benchmarks/index.html"
    return render(request, template, _index_context(request, plan_form=plan_form))


@login_required
def workload_create(request):
    require_operator(request.user)
    form = forms.WorkloadForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            services.workload_save(actor=request.user, name=data.pop("name"), ip=client_ip(request), **data)
            messages.success(request, "Workload saved.")
            return redirect("benchmarks-index")
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    return render(request, "benchmarks/index.html", _index_context(request, workload_form=form))


@login_required
@require_POST
def plan_run(request, plan_id: int):
    require_operator(request.user)
    plan = selectors.plan_get(plan_id=plan_id)
    try:
        run = services.run_create(plan=plan, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("benchmarks-index")
    return redirect("benchmarks-run", run_id=run.pk)


@login_required
@require_POST
def plan_schedule(request, plan_id: int):
    require_operator(request.user)
    plan = selectors.plan_get(plan_id=plan_id)
    if request.POST.get("clear"):
        services.plan_schedule_clear(plan=plan, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Plan {plan.name} is no longer scheduled.")
        return redirect("benchmarks-index")
    form = forms.ScheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Fix the schedule: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("benchmarks-index")
    try:
        services.plan_schedule_set(plan=plan, actor=request.user, ip=client_ip(request), **form.cleaned_data)
        messages.success(request, f"Plan {plan.name} scheduled.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("benchmarks-index")


@login_required
def run_detail(request, run_id: int):
    run = selectors.run_get(run_id=run_id)
    context = {"run": run, "summaries": run.summaries.all(), "metrics": SUMMARY_METRICS,
               "may_run": selectors.may_run(request.user),
               "warnings": selectors.comparison_warnings(list(run.summaries.filter(status="done")))}
    template = "benchmarks/run.html#result-table" if request.htmx else "benchmarks/run.html"
    return render(request, template, context)


@login_required
@require_POST
def run_cancel(request, run_id: int):
    require_operator(request.user)
    try:
        services.run_cancel(run=selectors.run_get(run_id=run_id), actor=request.user, ip=client_ip(request))
        messages.success(request, "Cancelling: the run stops and stops every server it started.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("benchmarks-run", run_id=run_id)


@login_required
def compare(request):
    runs = request.GET.get("runs", "")
    try:
        table = selectors.compare(run_ids=selectors.parse_run_ids(runs))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("benchmarks-index")
    history = {row["profile"]: selectors.profile_history(profile_id=row["profile_id"])
               for row in table["dicts"] if row["profile_id"]}
    return render(request, "benchmarks/compare.html", {"table": table, "runs": runs, "metrics": SUMMARY_METRICS,
                                                       "chart_rows": table["dicts"], "history": history})
