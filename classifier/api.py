"""REST API of the classifier (mounted at /api/classifier/)."""
from uuid import UUID

from ninja import File, Router, Status, UploadedFile
from ninja.pagination import paginate

from accounts.services import client_ip
from classifier import results_export, selectors, services
from classifier.models import ClassificationJob, TaxonomyNode, TaxonomyVersion
from classifier.schemas import (
    ApplyIn,
    CalibrateIn,
    ClassifierResultOut,
    CorrectionIn,
    ErrorOut,
    EvaluateIn,
    FindingOut,
    JobIn,
    JobOut,
    MarginIn,
    NodePatch,
    TaskOut,
    TaxonomyIn,
    TaxonomyNodeOut,
    VersionOut,
)
from classifier.taxonomy import lint as lint_mod

router = Router()
ERRORS = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


def version_out(v: TaxonomyVersion) -> dict:
    return {"id": v.pk, "taxonomy": v.taxonomy.name, "number": v.number, "note": v.note, "nodes": v.nodes.count(),
            "margins": v.margins, "created_at": v.created_at}


def node_out(n: TaxonomyNode) -> dict:
    return {"id": n.pk, "code": n.code, "name": n.name, "description": n.description, "keywords": n.keywords,
            "depth": n.depth, "label_path": n.label_path, "parent_code": n.parent.code if n.parent_id else None}


def job_out(j: ClassificationJob) -> dict:
    return {**{f: getattr(j, f) for f in JobOut.model_fields if hasattr(j, f) and f not in ("owner", "taxonomy",
                                                                                             "version")},
            "owner": j.owner.get_username(), "taxonomy": j.version.taxonomy.name, "version": j.version.number,
            "rerank_share": j.rerank_share}


@router.post("/taxonomies/", response={201: VersionOut, **ERRORS})
def taxonomy_import(request, body: TaxonomyIn):
    version = services.taxonomy_import(actor=request.user, name=body.name, yaml_text=body.yaml,
                                       ip=client_ip(request))
    return Status(201, version_out(version))


@router.get("/taxonomies/", response=list[VersionOut])
def taxonomy_list(request):
    return [version_out(selectors.version_get(taxonomy=t)) for t in selectors.taxonomy_list(user=request.user)]


@router.get("/taxonomies/{name}/nodes/", response={200: list[TaxonomyNodeOut], **ERRORS})
def taxonomy_nodes(request, name: str, version: int | None = None):
    v = selectors.version_get(taxonomy=selectors.taxonomy_get(name=name), number=version)
    return [node_out(n) for n in v.nodes.select_related("parent").order_by("position")]


@router.get("/taxonomies/{name}/lint/", response={200: list[FindingOut], **ERRORS})
def taxonomy_lint(request, name: str, version: int | None = None, embedder: str | None = None,
                  similarity: float = lint_mod.DEFAULT_SIMILARITY):
    v = selectors.version_get(taxonomy=selectors.taxonomy_get(name=name), number=version)
    return [f.as_dict() for f in lint_mod.lint(v, embedder_key=embedder, similarity=similarity)]


@router.patch("/nodes/{node_id}/", response={200: TaxonomyNodeOut, **ERRORS})
def node_update(request, node_id: int, body: NodePatch):
    node = selectors.node_get_for_change(user=request.user, node_id=node_id)
    new = services.taxonomy_node_update(actor=request.user, node=node, name=body.name, description=body.description,
                                        keywords=body.keywords, ip=client_ip(request))
    return node_out(new)


@router.post("/jobs/", response={201: JobOut, **ERRORS})
def job_create(request, body: JobIn):
    version = selectors.version_get(taxonomy=selectors.taxonomy_get(name=body.taxonomy), number=body.version)
    job = services.job_create(owner=request.user, version=version, source_path=body.path, depth=body.depth,
                              embedder=body.embedder, margin=body.margin, rerank_model=body.rerank_model,
                              include=body.include, exclude=body.exclude, max_bytes=body.max_bytes,
                              shared=body.shared, ip=client_ip(request))
    return Status(201, job_out(job))


@router.get("/jobs/", response=list[JobOut])
@paginate
def job_list(request):
    return [job_out(j) for j in selectors.job_list_visible(user=request.user)]


@router.get("/jobs/{job_id}/", response={200: JobOut, **ERRORS})
def job_detail(request, job_id: int):
    return job_out(selectors.job_get_visible(user=request.user, job_id=job_id))


@router.post("/jobs/{job_id}/cancel/", response={200: JobOut, **ERRORS})
def job_cancel(request, job_id: int):
    job = selectors.job_get_own(user=request.user, job_id=job_id)
    return job_out(services.job_cancel(actor=request.user, job=job, ip=client_ip(request)))


@router.post("/jobs/{job_id}/resume/", response={200: JobOut, **ERRORS})
def job_resume(request, job_id: int):
    job = selectors.job_get_own(user=request.user, job_id=job_id)
    return job_out(services.job_resume(actor=request.user, job=job, ip=client_ip(request)))


@router.get("/jobs/{job_id}/results/", response={200: list[ClassifierResultOut], **ERRORS})
@paginate
def job_results(request, job_id: int, code: str = "", method: str = "", reason: str = "",
                min_confidence: float | None = None, max_confidence: float | None = None):
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    qs = selectors.result_list(job=job, code=code, method=method, reason=reason, min_confidence=min_confidence,
                               max_confidence=max_confidence).select_related("corrected_by")
    return qs


@router.post("/results/{result_id}/correct/", response={200: ClassifierResultOut, **ERRORS})
def result_correct(request, result_id: int, body: CorrectionIn):
    result = selectors.result_get_own(user=request.user, result_id=result_id)
    return services.result_correct(actor=request.user, result=result, code=body.code, ip=client_ip(request))


@router.post("/taxonomies/{name}/calibrate/", response={202: TaskOut, **ERRORS})
def margin_calibrate(request, name: str, body: CalibrateIn, version: int | None = None):
    """Runs on a worker (models never load in the web process); poll /tasks/{task_id}/."""
    v = selectors.version_get(taxonomy=selectors.taxonomy_get_for_change(user=request.user, name=name), number=version)
    task_id = services.margin_calibration_start(actor=request.user, version=v, labeled_csv=body.labeled_csv,
                                                embedder=body.embedder, depth=body.depth, target=body.target)
    return Status(202, {"task_id": task_id, "state": "PENDING"})


@router.post("/taxonomies/{name}/margin/", response={200: VersionOut, **ERRORS})
def margin_override(request, name: str, body: MarginIn, version: int | None = None):
    """Jobs use this margin instead of the calibrated one; the calibration's curve is kept."""
    v = selectors.version_get(taxonomy=selectors.taxonomy_get_for_change(user=request.user, name=name), number=version)
    v = services.version_margin_override(actor=request.user, version=v, embedder_key=body.embedder,
                                         depth=body.depth, margin=body.margin, ip=client_ip(request))
    return version_out(v)


@router.post("/evaluate/", response={202: TaskOut, **ERRORS})
def evaluate(request, body: EvaluateIn):
    """Each setting may name its taxonomy version (its label text); poll /tasks/{task_id}/."""
    taxonomy = selectors.taxonomy_get(name=body.taxonomy)
    sides = [{"version": s.version or body.version, "embedder": s.embedder_key, "depth": s.depth, "margin": s.margin,
              "rerank_model": s.rerank_model} for s in body.settings]
    task_id = services.evaluation_start(actor=request.user, taxonomy=taxonomy, labeled_csv=body.labeled_csv,
                                        sides=sides)
    return Status(202, {"task_id": task_id, "state": "PENDING"})


@router.get("/tasks/{task_id}/", response={200: TaskOut, **ERRORS})
def task_state(request, task_id: UUID):
    """A calibration or evaluation you started (its id is the UUID the start answered with)."""
    return selectors.task_state(selectors.task_get_own(user=request.user, task_id=str(task_id)))


@router.get("/jobs/{job_id}/plan/", response={200: list[dict], **ERRORS})
def job_plan(request, job_id: int, target: str, mode: str = "copy"):
    """The dry run: what would be copied (or symlinked) where."""
    job = selectors.job_get_visible(user=request.user, job_id=job_id)
    return results_export.apply_plan(job, target=target, mode=mode)


@router.post("/jobs/{job_id}/apply/", response={200: dict, **ERRORS})
def job_apply(request, job_id: int, body: ApplyIn):
    job = selectors.job_get_own(user=request.user, job_id=job_id)
    return services.job_plan_apply(actor=request.user, job=job, target=body.target, mode=body.mode,
                                   ip=client_ip(request))


@router.post("/uploads/", response={201: dict, **ERRORS})
def upload(request, files: list[UploadedFile] = File(...)):  # noqa: B008 - ninja's declaration style
    """Upload files or a .zip; start a job on the returned path."""
    path = services.upload_store(owner=request.user, files=[(f.name, f) for f in files], ip=client_ip(request))
    return Status(201, {"path": path})
