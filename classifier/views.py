"""Pages under /classifier/: taxonomies (import, tree, edit, lint), jobs (start, live progress, results)."""
import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import client_ip
from classifier import embedders, events, exports, selectors, services
from classifier import lint as lint_mod
from classifier.models import ClassificationResult
from sparkportal.exceptions import ApplicationError


@login_required
def home(request):
    return render(request, "classifier/home.html", {
        "taxonomies": selectors.taxonomy_list(user=request.user),
        "jobs": selectors.job_list_visible(user=request.user)[:50],
        "embedders": sorted(embedders.available()),
        "default_embedder": services.settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER,
        "roots": services.scan.roots(),
    })


@login_required
@require_POST
def taxonomy_import(request):
    upload = request.FILES.get("file")
    text = upload.read().decode("utf-8", "replace") if upload else request.POST.get("yaml", "")
    try:
        version = services.taxonomy_import(actor=request.user, name=request.POST.get("name", ""), yaml_text=text,
                                           ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, f"Import failed: {exc.message}")
        return redirect("classifier-home")
    messages.success(request, f"Imported {version} with {version.nodes.count()} nodes.")
    return redirect("classifier-taxonomy", name=version.taxonomy.name)


@login_required
def taxonomy_detail(request, name: str):
    taxonomy = selectors.taxonomy_get(name=name)
    number = request.GET.get("version")
    version = selectors.version_get(taxonomy=taxonomy, number=int(number) if number and number.isdigit() else None)
    embedder = request.GET.get("embedder") or services.settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
    return render(request, "classifier/taxonomy.html", {
        "taxonomy": taxonomy, "version": version, "versions": taxonomy.versions.all(),
        "tree": selectors.tree(version=version), "findings": lint_mod.lint(version, embedder_key=embedder),
        "embedder": embedder,
    })


@login_required
@require_POST
def node_edit(request, node_id: int):
    node = selectors.node_get(node_id=node_id)
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
    try:
        taxonomy = selectors.taxonomy_get(name=request.POST.get("taxonomy", ""))
        version = selectors.version_get(taxonomy=taxonomy)
        margin = request.POST.get("margin", "").strip()
        job = services.job_create(
            owner=request.user, version=version, source_path=request.POST.get("path", ""),
            depth=int(request.POST.get("depth") or 2), embedder=request.POST.get("embedder") or None,
            margin=float(margin) if margin else None, rerank_model=request.POST.get("rerank_model"),
            include=request.POST.get("include", ""), exclude=request.POST.get("exclude", ""),
            shared=bool(request.POST.get("shared")), ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, f"Could not start the job: {exc.message}")
        return redirect("classifier-home")
    except ValueError:
        messages.error(request, "Depth must be a whole number and the margin a decimal number such as 0.03.")
        return redirect("classifier-home")
    return redirect("classifier-job", job_id=job.pk)


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
    rows = exports.rows(selectors.result_list(job=job))
    if fmt == "json":
        response = JsonResponse(rows, safe=False, json_dumps_params={"ensure_ascii": False, "indent": 1})
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.DictWriter(response, fieldnames=exports.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    response["Content-Disposition"] = f'attachment; filename="classification-job-{job.pk}.{fmt}"'
    return response


@login_required
def job_plan(request, job_id: int):
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    target = request.GET.get("target", "").strip()
    plan = exports.apply_plan(job, target=target or "/archive-sorted")
    return render(request, "classifier/plan.html", {"job": job, "plan": plan, "target": target or "/archive-sorted",
                                                    "plan_json": json.dumps(plan[:3], ensure_ascii=False)})
