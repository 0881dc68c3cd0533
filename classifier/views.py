"""Pages under /classifier/: taxonomies (import, tree, edit, lint, margin calibration), evaluation side by side,
jobs (start from a folder or an upload, live progress, results)."""
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.services import client_ip
from classifier import events, forms, results_export, selectors, services
from classifier.models import ClassificationResult
from classifier.taxonomy import lint as lint_mod
from classifier.taxonomy import yaml_import
from sparkportal.exceptions import ApplicationError, PayloadTooLarge
from sparkportal.lib.csvsafe import SafeDictWriter


def _home_context(request, job_form=None) -> dict:
    return {
        "taxonomies": selectors.taxonomy_list(user=request.user),
        "jobs": selectors.job_list_visible(user=request.user)[:50],
        "job_form": job_form or forms.JobForm(user=request.user),
        "roots": services.scan.roots(),
        "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
    }


@login_required
def home(request):
    return render(request, "classifier/home.html", _home_context(request))


def _redirect(request, url: str):
    """After an htmx form, the browser itself goes to the new page."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def taxonomy_import(request):
    upload = request.FILES.get("file")
    try:
        text = yaml_import.read_upload(upload, name=upload.name) if upload else request.POST.get("yaml", "")
        version = services.taxonomy_import(actor=request.user, name=request.POST.get("name", ""), yaml_text=text,
                                           ip=client_ip(request))
    except PayloadTooLarge as exc:
        return render(request, "classifier/home.html", {**_home_context(request), "import_error": exc.message},
                      status=exc.status)
    except ApplicationError as exc:
        messages.error(request, f"Import failed: {exc.message}")
        return redirect("classifier-home")
    messages.success(request, f"Imported {version} with {version.nodes.count()} nodes.")
    return redirect("classifier-taxonomy", name=version.taxonomy.name)


def _version(request, taxonomy):
    number = request.POST.get("version") or request.GET.get("version")
    return selectors.version_get(taxonomy=taxonomy, number=int(number) if number and number.isdigit() else None)


def _margins_context(request, version, **extra) -> dict:
    return {"taxonomy": version.taxonomy, "version": version, "margins": selectors.version_margins(version=version),
            "may_change": selectors.taxonomy_may_change(user=request.user, taxonomy=version.taxonomy), **extra}


@login_required
def taxonomy_detail(request, name: str):
    taxonomy = selectors.taxonomy_get(name=name)
    version = _version(request, taxonomy)
    embedder = request.GET.get("embedder") or settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
    return render(request, "classifier/taxonomy.html", {
        **_margins_context(request, version), "versions": taxonomy.versions.all(),
        "tree": selectors.tree(version=version), "findings": lint_mod.lint(version, embedder_key=embedder),
        "embedder": embedder, "calibration_form": forms.CalibrationForm(),
    })


@login_required
@require_POST
def margin_calibrate(request, name: str):
    """Starts the calibration on a worker; the form then polls its state (calibration_status)."""
    version = _version(request, selectors.taxonomy_get_for_change(user=request.user, name=name))
    form = forms.CalibrationForm(request.POST, request.FILES)
    task = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            task_id = services.margin_calibration_start(actor=request.user, version=version,
                                                        labeled_csv=data["labeled_csv"], embedder=data["embedder"],
                                                        depth=data["depth"], target=data["target"] / 100)
            task = {"task_id": task_id, "state": "PENDING"}
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    return render(request, "classifier/taxonomy.html#calibrate",
                  _margins_context(request, version, calibration_form=form, task=task))


@login_required
def calibration_status(request, name: str, task_id: str):
    """Polled while the calibration runs; once done, it also refreshes the stored margins."""
    task = selectors.task_state(selectors.task_get_own(user=request.user, task_id=task_id))
    version = _version(request, selectors.taxonomy_get(name=name))
    return render(request, "classifier/taxonomy.html#calibration-status", _margins_context(request, version, task=task))


@login_required
@require_POST
def margin_override(request, name: str):
    version = _version(request, selectors.taxonomy_get_for_change(user=request.user, name=name))
    form = forms.MarginOverrideForm(request.POST)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            version = services.version_margin_override(actor=request.user, version=version,
                                                       embedder_key=data["embedder"], depth=data["depth"],
                                                       margin=data["margin"], ip=client_ip(request))
        except ApplicationError as exc:
            error = exc.message
    else:
        error = " ".join(e for errors in form.errors.values() for e in errors)
    key = f"{request.POST.get('embedder')}@{request.POST.get('depth')}"
    return render(request, "classifier/taxonomy.html#margin-list",
                  _margins_context(request, version, override_error=error, override_key=key))


@login_required
def evaluate(request, name: str):
    """Two settings side by side on one labeled sample; runs on a worker, the page polls its state."""
    taxonomy = selectors.taxonomy_get(name=name)
    post = (request.POST, request.FILES) if request.method == "POST" else ()
    form = forms.LabeledCsvFields(*post)
    sides = [forms.EvaluationSideForm(*post[:1], prefix=p, taxonomy=taxonomy) for p in ("a", "b")]
    task = None
    if request.method == "POST" and all([form.is_valid(), *(s.is_valid() for s in sides)]):
        try:
            task_id = services.evaluation_start(actor=request.user, taxonomy=taxonomy,
                                                labeled_csv=form.cleaned_data["labeled_csv"],
                                                sides=[s.cleaned_data for s in sides])
            task = {"task_id": task_id, "state": "PENDING"}
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    template = "classifier/evaluate.html#evaluate" if request.htmx else "classifier/evaluate.html"
    return render(request, template, {"taxonomy": taxonomy, "form": form, "sides": sides, "task": task})


@login_required
def evaluation_status(request, name: str, task_id: str):
    taxonomy = selectors.taxonomy_get(name=name)
    task = selectors.task_state(selectors.task_get_own(user=request.user, task_id=task_id))
    reports = selectors.evaluation_reports(taxonomy=taxonomy, reports=task["result"] or [])
    return render(request, "classifier/evaluate.html#evaluation-status",
                  {"taxonomy": taxonomy, "task": task, "reports": reports})


@login_required
@require_POST
def node_edit(request, node_id: int):
    node = selectors.node_get_for_change(user=request.user, node_id=node_id)
    try:
        new = services.taxonomy_node_update(actor=request.user, node=node, name=request.POST.get("name"),
                                            description=request.POST.get("description"), ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("classifier-taxonomy", name=node.version.taxonomy.name)
    messages.success(request, f"Saved {new.code} as version {new.version.number}.")
    return redirect(f"/classifier/taxonomies/{new.version.taxonomy.name}/?version={new.version.number}")


@login_required
@require_POST
def job_create(request):
    """From a folder under the roots or from uploaded files / a zip; errors come back in the form."""
    form = forms.JobForm(request.POST, request.FILES, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            version = selectors.version_get(taxonomy=selectors.taxonomy_get(name=data["taxonomy"]))
            if data["source"] == "upload":
                job = services.job_create_from_upload(owner=request.user, version=version, ip=client_ip(request),
                                                      files=[(f.name, f) for f in data["files"]], **form.options())
            else:
                job = services.job_create(owner=request.user, version=version, source_path=data["path"],
                                          ip=client_ip(request), **form.options())
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return _redirect(request, reverse("classifier-job", args=[job.pk]))
    template = "classifier/home.html#job-form" if request.htmx else "classifier/home.html"
    return render(request, template, _home_context(request, job_form=form))


def _results_context(request, job):
    f = request.GET
    results = selectors.result_list(job=job, code=f.get("code", ""), method=f.get("method", ""),
                                    reason=f.get("reason", "")).select_related("corrected_by")
    return {"job": job, "results": results[:500], "methods": ClassificationResult.Method.choices,
            "codes": list(job.version.nodes.order_by("position").values_list("code", "label_path")),
            "may_edit": job.owner_id == request.user.pk or request.user.is_portal_admin, "filters": f}


@login_required
def job_detail(request, job_id: int):
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    context = {**_results_context(request, job), "group": events.job_group(job.pk)}
    if request.htmx:
        return render(request, "classifier/job.html#results", context)
    return render(request, "classifier/job.html", context)


@login_required
@require_POST
def job_action(request, job_id: int, action: str):
    job = selectors.job_get_own(user=request.user, job_id=job_id)
    try:
        if action == "cancel":
            services.job_cancel(actor=request.user, job=job, ip=client_ip(request))
        else:
            services.job_resume(actor=request.user, job=job, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("classifier-job", job_id=job.pk)


@login_required
@require_POST
def result_correct(request, result_id: int):
    result = selectors.result_get_own(user=request.user, result_id=result_id)
    error = ""
    try:
        result = services.result_correct(actor=request.user, result=result, code=request.POST.get("code", ""),
                                         ip=client_ip(request))
    except ApplicationError as exc:
        error = exc.message
    context = {**_results_context(request, result.job), "r": result, "error": error}
    return render(request, "classifier/job.html#row", context)


@login_required
def job_export(request, job_id: int, fmt: str):
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    rows = results_export.rows(selectors.result_list(job=job))
    if fmt == "json":
        response = JsonResponse(rows, safe=False, json_dumps_params={"ensure_ascii": False, "indent": 1})
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = SafeDictWriter(response, fieldnames=results_export.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    response["Content-Disposition"] = f'attachment; filename="classification-job-{job.pk}.{fmt}"'
    return response


@login_required
def job_plan(request, job_id: int):
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    target = request.GET.get("target", "").strip()
    plan = results_export.apply_plan(job, target=target or "/archive-sorted")
    return render(request, "classifier/plan.html", {"job": job, "plan": plan, "target": target or "/archive-sorted",
                                                    "plan_json": json.dumps(plan[:3], ensure_ascii=False)})
