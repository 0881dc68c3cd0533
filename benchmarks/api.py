from django.http import HttpResponse
from ninja import Router, Status
from ninja.pagination import paginate

from accounts.selectors import require_operator
from accounts.services import client_ip
from benchmarks import schemas, selectors, services

router = Router()
ERRORS = {400: schemas.ErrorOut, 401: schemas.ErrorOut, 403: schemas.ErrorOut, 404: schemas.ErrorOut,
          409: schemas.ErrorOut}


@router.get("/workloads", response=list[schemas.WorkloadOut])
def workload_list(request):
    return selectors.workload_list()


@router.post("/workloads", response={201: schemas.WorkloadOut, **ERRORS})
def workload_create(request, payload: schemas.WorkloadIn):
    require_operator(request.user)
    data = payload.dict()
    workload = services.workload_save(actor=request.user, name=data.pop("name"), ip=client_ip(request), **data)
    return Status(201, workload)


@router.get("/plans", response=list[schemas.PlanOut])
def plan_list(request):
    return selectors.plan_list()


@router.post("/plans", response={201: schemas.PlanOut, **ERRORS})
def plan_create(request, payload: schemas.PlanIn):
    require_operator(request.user)
    data = payload.dict()
    workload_id = data.pop("workload_id")
    workload = (selectors.workload_get(workload_id=workload_id) if workload_id
                else services.workload_default(actor=request.user))
    profiles = selectors.profiles_by_ids(ids=data.pop("profile_ids"))
    plan = services.plan_save(actor=request.user, name=data.pop("name"), workload=workload, profiles=profiles,
                              ip=client_ip(request), **data)
    return Status(201, selectors.plan_get(plan_id=plan.pk))


@router.get("/plans/{plan_id}", response={200: schemas.PlanOut, **ERRORS})
def plan_detail(request, plan_id: int):
    return selectors.plan_get(plan_id=plan_id)


@router.delete("/plans/{plan_id}", response={204: None, **ERRORS})
def plan_delete(request, plan_id: int):
    require_operator(request.user)
    services.plan_delete(plan=selectors.plan_get(plan_id=plan_id), actor=request.user, ip=client_ip(request))
    return Status(204, None)


@router.put("/plans/{plan_id}/schedule", response={200: schemas.PlanOut, **ERRORS})
def plan_schedule(request, plan_id: int, payload: schemas.ScheduleIn):
    require_operator(request.user)
    services.plan_schedule_set(plan=selectors.plan_get(plan_id=plan_id), actor=request.user, ip=client_ip(request),
                               **payload.dict())
    return selectors.plan_get(plan_id=plan_id)


@router.delete("/plans/{plan_id}/schedule", response={200: schemas.PlanOut, **ERRORS})
def plan_unschedule(request, plan_id: int):
    require_operator(request.user)
    services.plan_schedule_clear(plan=selectors.plan_get(plan_id=plan_id), actor=request.user, ip=client_ip(request))
    return selectors.plan_get(plan_id=plan_id)


@router.post("/plans/{plan_id}/runs", response={201: schemas.RunOut, **ERRORS})
def run_create(request, plan_id: int):
    require_operator(request.user)
    run = services.run_create(plan=selectors.plan_get(plan_id=plan_id), actor=request.user, ip=client_ip(request))
    return Status(201, selectors.run_get(run_id=run.pk))


@router.get("/runs", response=list[schemas.RunOut])
@paginate
def run_list(request, plan_id: int | None = None):
    return selectors.run_list(plan=selectors.plan_get(plan_id=plan_id) if plan_id else None)


@router.get("/runs/{run_id}", response={200: schemas.RunOut, **ERRORS})
def run_detail(request, run_id: int):
    return selectors.run_get(run_id=run_id)


@router.post("/runs/{run_id}/cancel", response={200: schemas.RunOut, **ERRORS})
def run_cancel(request, run_id: int):
    require_operator(request.user)
    services.run_cancel(run=selectors.run_get(run_id=run_id), actor=request.user, ip=client_ip(request))
    return selectors.run_get(run_id=run_id)


@router.get("/runs/{run_id}/results", response={200: list[schemas.ResultOut], **ERRORS})
def result_list(request, run_id: int):
    run = selectors.run_get(run_id=run_id)
    return [r for s in run.summaries.all() for r in s.results.all()]


@router.get("/runs/{run_id}/results/{result_id}/raw", response={200: dict, **ERRORS})
def result_raw(request, run_id: int, result_id: int):
    """The result file of one repeat exactly as the tool wrote it."""
    return selectors.result_get(run_id=run_id, result_id=result_id).raw or {}


@router.get("/compare", response={200: schemas.CompareOut, **ERRORS})
def compare(request, runs: str):
    table = selectors.compare(run_ids=selectors.parse_run_ids(runs))
    return {"rows": table["dicts"], "warnings": table["warnings"]}


@router.get("/export", response={200: None, **ERRORS})
def export(request, runs: str, format: str = "csv"):
    table = selectors.compare(run_ids=selectors.parse_run_ids(runs))
    if format == "json":
        body, kind = selectors.export_json(table["dicts"]), "application/json"
    elif format == "csv":
        body, kind = selectors.export_csv(table["dicts"]), "text/csv"
    else:
        from sparkportal.exceptions import ValidationFailed

        raise ValidationFailed(f"Unknown export format {format!r}: use csv or json.")
    response = HttpResponse(body, content_type=kind)
    response["Content-Disposition"] = f'attachment; filename="benchmarks-{runs.replace(",", "-")}.{format}"'
    return response


@router.get("/profiles/{profile_id}/history", response=list[schemas.HistoryPoint])
def profile_history(request, profile_id: int):
    return selectors.profile_history(profile_id=profile_id)
