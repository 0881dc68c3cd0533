"""Classifier writes: taxonomies and their versions, jobs (create, cancel, resume), corrections, uploads,
margin calibration (started, overridden), evaluations (started), the rerank's temporary API keys."""
import logging
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts import services as account_services
from accounts.models import ApiKey, User
from accounts.services import audit_record
from classifier import evaluation, rerank, selectors
from classifier.archive import scan, uploads
from classifier.embedding import embedders
from classifier.models import (
    ClassificationJob,
    ClassificationResult,
    LabeledExample,
    Taxonomy,
    TaxonomyNode,
    TaxonomyVersion,
)
from classifier.taxonomy import yaml_import
from sparkportal.celery import enqueue_default
from sparkportal.exceptions import InvalidTransition, ValidationFailed

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# As long as the task that holds the key may run (its Celery time limit): a worker killed mid-run leaves a
# key that is useless soon after, and a live run never outlives its key.
JOB_KEY_LIFETIME = timedelta(hours=24)
EVALUATION_KEY_LIFETIME = timedelta(hours=1, minutes=5)


def _create_nodes(version: TaxonomyVersion, parsed: list[yaml_import.ParsedNode]) -> None:
    """Parents are saved before children (parse() orders by depth); position follows the codes."""
    by_code: dict[str, TaxonomyNode] = {}
    positions = {code: i for i, code in enumerate(sorted((p.code for p in parsed),
                                                         key=lambda c: [int(x) for x in c.split(".")]))}
    for item in parsed:
        parent = by_code.get(item.parent_code) if item.parent_code else None
        node = TaxonomyNode(version=version, parent=parent, code=item.code, name=item.name,
                            description=item.description, keywords=item.keywords, examples=item.examples,
                            depth=item.code.count(".") + 1,
                            label_path=f"{parent.label_path} / {item.name}" if parent else item.name,
                            position=positions[item.code])
        node.full_clean(exclude=["version", "parent"])
        node.save()
        by_code[item.code] = node


@transaction.atomic
def taxonomy_import(*, actor: User, name: str, yaml_text: str, ip: str | None = None) -> TaxonomyVersion:
    """Import YAML as a new taxonomy, or as the next version of an existing one of the same name."""
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise ValidationFailed(f"Taxonomy name {name!r} must be lowercase letters, digits, '-' or '_' (e.g. 'jd').",
                               code="invalid_name")
    parsed = yaml_import.parse(yaml_text)
    taxonomy, created = Taxonomy.objects.select_for_update().get_or_create(name=name, defaults={"owner": actor})
    if not created:
        selectors.taxonomy_change_check(user=actor, taxonomy=taxonomy)
    number = (taxonomy.versions.aggregate(m=Max("number"))["m"] or 0) + 1
    version = TaxonomyVersion.objects.create(taxonomy=taxonomy, number=number, source=yaml_text, created_by=actor,
                                             note="imported")
    _create_nodes(version, parsed)
    audit_record(actor=actor, action="classifier.taxonomy.imported", target=version, ip=ip,
                 details={"taxonomy": name, "version": number, "nodes": len(parsed)})
    return version


@transaction.atomic
def taxonomy_node_update(*, actor: User, node: TaxonomyNode, name: str | None = None,
                         description: str | None = None, keywords: list[str] | None = None,
                         ip: str | None = None) -> TaxonomyNode:
    """Versions are immutable (jobs point at them): an edit copies the tree into the next version."""
    old = node.version
    taxonomy = Taxonomy.objects.select_for_update().get(pk=old.taxonomy_id)
    selectors.taxonomy_change_check(user=actor, taxonomy=taxonomy)
    if name is not None and not name.strip():
        raise ValidationFailed("A label cannot be empty.", code="empty_label")
    number = (taxonomy.versions.aggregate(m=Max("number"))["m"] or 0) + 1
    version = TaxonomyVersion.objects.create(taxonomy=taxonomy, number=number, created_by=actor,
                                             note=f"edited {node.code}", source="")
    copies: dict[int, TaxonomyNode] = {}
    changed = None
    for src in old.nodes.order_by("depth", "position"):
        new = TaxonomyNode(version=version, parent=copies.get(src.parent_id), code=src.code, name=src.name,
                           description=src.description, keywords=src.keywords, examples=src.examples,
                           depth=src.depth,
                           position=src.position, label_path="")
        if src.pk == node.pk:
            new.name = name.strip() if name is not None else new.name
            new.description = description.strip() if description is not None else new.description
            new.keywords = [k.strip() for k in keywords if k.strip()] if keywords is not None else new.keywords
            changed = new
        new.label_path = f"{new.parent.label_path} / {new.name}" if new.parent else new.name
        new.full_clean(exclude=["version", "parent"])
        new.save()
        copies[src.pk] = new
    audit_record(actor=actor, action="classifier.taxonomy.edited", target=version, ip=ip,
                 details={"taxonomy": taxonomy.name, "version": number, "code": node.code,
                          "name": changed.name, "description": changed.description})
    return changed


@transaction.atomic
def version_margin_store(*, actor: User | None, version: TaxonomyVersion, embedder_key: str, depth: int,
                         calibration: dict, ip: str | None = None) -> TaxonomyVersion:
    version = TaxonomyVersion.objects.select_for_update().get(pk=version.pk)
    margins = dict(version.margins)
    margins[f"{embedder_key}@{depth}"] = calibration
    version.margins = margins
    version.save(update_fields=["margins"])
    audit_record(actor=actor, action="classifier.margin.calibrated", target=version, ip=ip,
                 details={"embedder": embedder_key, "depth": depth, "margin": calibration.get("margin"),
                          "precision": calibration.get("precision")})
    return version


def default_margin(version: TaxonomyVersion, embedder_key: str, depth: int) -> float:
    calibrated = version.margins.get(f"{embedder_key}@{depth}")
    if calibrated and calibrated.get("margin") is not None:
        return float(calibrated["margin"])
    return settings.PORTAL_CLASSIFIER_DEFAULT_MARGIN


def _depth_check(version: TaxonomyVersion, depth: int) -> None:
    max_depth = max(version.nodes.values_list("depth", flat=True), default=1)
    if not 1 <= depth <= max_depth:
        raise ValidationFailed(f"Depth {depth} is not in this taxonomy: choose 1 to {max_depth} (start at 2).",
                               code="invalid_depth")


def _settings_check(*, version: TaxonomyVersion, depth: int, embedder: str | None, margin: float | None) -> str:
    """The classification settings that jobs, calibrations and evaluations share; returns the embedder."""
    _depth_check(version, depth)
    embedder = embedder or settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
    embedders.get_spec(embedder)
    if margin is not None and not 0 <= margin <= 1:
        raise ValidationFailed("The margin is a cosine difference between 0 and 1.", code="invalid_margin")
    return embedder


def _globs(value: object) -> list[str]:
    if isinstance(value, str):
        value = re.split(r"[,\n]", value)
    return [g.strip() for g in (value or []) if g and g.strip()]


@transaction.atomic
def job_create(*, owner: User, version: TaxonomyVersion, source_path: str, depth: int = 2,
               embedder: str | None = None, margin: float | None = None, rerank_model: str | None = None,
               include: object = None, exclude: object = None, max_bytes: int | None = None, shared: bool = False,
               use_examples: bool = True, ip: str | None = None, enqueue: bool = True) -> ClassificationJob:
    source = scan.check_source(source_path)
    uploads = scan.uploads_root()
    if source.is_relative_to(uploads) and not source.is_relative_to(uploads / owner.get_username()):
        raise ValidationFailed("That upload folder belongs to someone else.", code="path_not_yours")
    embedder = _settings_check(version=version, depth=depth, embedder=embedder, margin=margin)
    job = ClassificationJob(
        owner=owner, version=version, source_path=str(source), depth=depth, embedder=embedder,
        margin=margin if margin is not None else default_margin(version, embedder, depth),
        rerank_model=settings.PORTAL_CLASSIFIER_LLM_MODEL if rerank_model is None else rerank_model.strip(),
        include=_globs(include), exclude=_globs(exclude), shared=shared, use_examples=use_examples,
        max_bytes=max_bytes or settings.PORTAL_CLASSIFIER_MAX_BYTES)
    job.full_clean()
    job.save()
    audit_record(actor=owner, action="classifier.job.created", target=job, ip=ip,
                 details={"source": job.source_path, "taxonomy": str(version), "depth": depth, "embedder": embedder,
                          "margin": job.margin, "rerank_model": job.rerank_model, "use_examples": use_examples})
    if enqueue:
        _enqueue(job)
    return job


def _enqueue(job: ClassificationJob) -> None:
    from classifier.tasks import classification_job_run_task

    transaction.on_commit(lambda: enqueue_default(classification_job_run_task, job.pk))


def _transition(job: ClassificationJob, new: str, **fields) -> ClassificationJob:
    allowed_from = [s for s, targets in ClassificationJob.TRANSITIONS.items() if new in targets]
    updated = ClassificationJob.objects.filter(pk=job.pk, status__in=allowed_from).update(status=new, **fields)
    job.refresh_from_db()
    if not updated:
        raise InvalidTransition(f"Job {job.pk} is {job.status}; it cannot become {new}.")
    return job


@transaction.atomic
def job_cancel(*, actor: User, job: ClassificationJob, ip: str | None = None) -> ClassificationJob:
    """The running task notices between batches and stops; finished files stay."""
    job = _transition(job, ClassificationJob.Status.CANCELLED, status_reason=f"cancelled by {actor.get_username()}",
                      finished_at=timezone.now())
    audit_record(actor=actor, action="classifier.job.cancelled", target=job, ip=ip)
    return job


@transaction.atomic
def job_resume(*, actor: User, job: ClassificationJob, ip: str | None = None) -> ClassificationJob:
    job = _transition(job, ClassificationJob.Status.QUEUED, status_reason="", finished_at=None)
    audit_record(actor=actor, action="classifier.job.resumed", target=job, ip=ip,
                 details={"files_done": job.files_done})
    _enqueue(job)
    return job


@transaction.atomic
def examples_import(*, actor: User | None, taxonomy: Taxonomy, rows: list[tuple[str, str]],
                    source: str = LabeledExample.Source.CSV, ip: str | None = None) -> int:
    """Labeled rows (path or text, code) become examples of their classes in the taxonomy's latest
    version; returns how many were new. Every row is checked before any is stored: one bad row imports
    nothing. A row already stored (same code and text) is not stored twice."""
    if actor is not None:  # None: a task whose starter was checked, then deleted
        selectors.taxonomy_change_check(user=actor, taxonomy=taxonomy)
    version = selectors.version_get(taxonomy=taxonomy)
    evaluation.rows_check(version=version, rows=rows)
    texts = [evaluation.text_of(item) for item, _ in rows]
    for n, text in enumerate(texts, start=1):
        if not text.strip():
            raise ValidationFailed(f"Labeled row {n}: the example is empty.", code="empty_example")
    known = set(LabeledExample.objects.filter(taxonomy=taxonomy).values_list("code", "text"))
    new = []
    for (_item, code), text in zip(rows, texts, strict=True):
        if (code, text) not in known:
            known.add((code, text))
            new.append(LabeledExample(taxonomy=taxonomy, code=code, text=text, source=source, created_by=actor))
    LabeledExample.objects.bulk_create(new)
    audit_record(actor=actor, action="classifier.examples.imported", target=version, ip=ip,
                 details={"taxonomy": taxonomy.name, "rows": len(rows), "new": len(new), "source": source})
    return len(new)


def _correction_example(*, actor: User, result: ClassificationResult, node: TaxonomyNode) -> None:
    """A corrected result teaches the next jobs: its text becomes an example of the right class, when the
    corrector may change the taxonomy (a job on someone else's taxonomy corrects only its own results)."""
    if not selectors.taxonomy_may_change(user=actor, taxonomy=result.job.version.taxonomy):
        return
    text = evaluation.example_text(result.path)
    if not text:
        return
    LabeledExample.objects.update_or_create(
        result=result, defaults={"taxonomy_id": result.job.version.taxonomy_id, "code": node.code, "text": text,
                                 "source": LabeledExample.Source.CORRECTION, "created_by": actor})


@transaction.atomic
def result_correct(*, actor: User, result: ClassificationResult, code: str, ip: str | None = None
                   ) -> ClassificationResult:
    code = (code or "").strip()
    node = result.job.version.nodes.filter(code=code).first()
    if node is None:
        raise ValidationFailed(f"{code!r} is not a code of {result.job.version}: pick one from the taxonomy.",
                               code="unknown_code")
    before = result.code
    result.original_code = result.original_code or before
    result.node, result.code, result.label_path = node, node.code, node.label_path
    result.method = ClassificationResult.Method.MANUAL
    result.corrected_by, result.corrected_at = actor, timezone.now()
    result.confidence, result.reason = 1.0, f"corrected by {actor.get_username()}"
    result.full_clean(exclude=["job", "node", "corrected_by"])
    result.save()
    _correction_example(actor=actor, result=result, node=node)
    audit_record(actor=actor, action="classifier.result.corrected", target=result, ip=ip,
                 details={"job": result.job_id, "path": result.path, "from": before, "to": node.code})
    return result


def job_plan_apply(*, actor: User, job: ClassificationJob, target: str, mode: str = "copy",
                   ip: str | None = None) -> dict:
    """Copy or symlink a finished job's files into a Johnny-Decimal tree under `target` (inside the roots)."""
    from classifier import results_export

    if mode not in ("copy", "symlink"):
        raise ValidationFailed("mode is copy or symlink.", code="invalid_mode")
    if job.status != ClassificationJob.Status.DONE:
        raise InvalidTransition(f"Job {job.pk} is {job.status}: apply the plan of a finished job.")
    target_path = scan.check_target(target)
    plan = results_export.apply_plan(job, target=str(target_path), mode=mode)
    outcome = results_export.apply(plan)
    audit_record(actor=actor, action="classifier.job.applied", target=job, ip=ip,
                 details={"target": str(target_path), "mode": mode, "placed": outcome["placed"],
                          "skipped": len(outcome["skipped"])})
    return outcome


def upload_store(*, owner: User, files: list[tuple[str, object]], ip: str | None = None) -> str:
    """Unpack uploaded files (a .zip is extracted) into a fresh folder a job can then read.

    Refused, leaving nothing behind: no files, nothing but empty files, a zip member named outside the
    folder (absolute or '..'), more than PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES unpacked."""
    if not files:
        raise ValidationFailed("Choose at least one file or a .zip to upload.", code="empty_upload")
    upload = uploads.UploadFolder(scan.uploads_root() / owner.get_username() / uuid.uuid4().hex)
    upload.folder.mkdir(parents=True)
    try:
        for name, fh in files:
            if name.lower().endswith(".zip"):
                upload.add_zip(name, fh)
            else:
                upload.add_file(name, fh)
        if upload.total == 0:
            raise ValidationFailed("The upload is empty (0 bytes): choose the files to classify.",
                                   code="empty_upload")
    except BaseException:
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    audit_record(actor=owner, action="classifier.upload.stored", target_type="classifier.upload",
                 target_id=upload.folder.name, ip=ip,
                 details={"files": [n for n, _ in files], "unpacked": upload.files, "bytes": upload.total})
    return str(upload.folder)


def is_portal_gateway(url: str) -> bool:
    return url.rstrip("/") == settings.PORTAL_GATEWAY_URL.rstrip("/")


@contextmanager
def rerank_access(*, owner: User | None, models: list[str], name: str,
                  lifetime: timedelta = JOB_KEY_LIFETIME) -> Iterator[rerank.Access]:
    """Where a run's rerank requests go and which key they carry, for the length of the `with` block.

    1. When the URL is the portal's own gateway (PORTAL_GATEWAY_URL) and the run reranks, the owner gets a
       temporary key named `name` (audited like any key): gateway-only, limited to the rerank models,
       expiring after `lifetime`. Its secret lives only in this block; the key is revoked when the block
       ends, however it ends. The gateway then counts the requests against the owner's quotas and writes
       them to the owner's usage.
    2. Else the operator's PORTAL_CLASSIFIER_LLM_API_KEY (or none) is sent to the external URL, where the
       portal's quotas cannot apply.
    """
    url = settings.PORTAL_CLASSIFIER_LLM_URL
    models = sorted({m for m in models if m})
    if not models or owner is None or not is_portal_gateway(url):
        yield rerank.Access(url=url, api_key=settings.PORTAL_CLASSIFIER_LLM_API_KEY)
        return
    _stale_keys_revoke(owner=owner, name=name)
    key, raw = account_services.api_key_create(owner=owner, name=name, actor=owner, scopes=models,
                                               expires_at=timezone.now() + lifetime, gateway_only=True)
    try:
        yield rerank.Access(url=url, api_key=raw)
    finally:
        try:
            account_services.api_key_revoke(key=key, actor=owner, reason=f"{name} ended")
        except Exception:  # noqa: BLE001 - the run's own outcome matters more; the key expires anyway
            log.exception("could not revoke API key %s of %s; it expires at %s", key.display, name, key.expires_at)


def _stale_keys_revoke(*, owner: User, name: str) -> None:
    """An active key of the same name was left by a run whose worker died: it goes before a new one is made."""
    for stale in ApiKey.objects.filter(owner=owner, name=name, revoked_at__isnull=True, gateway_only=True):
        account_services.api_key_revoke(key=stale, actor=owner, reason=f"left by an interrupted run of {name}")


@transaction.atomic
def job_create_from_upload(*, owner: User, version: TaxonomyVersion, files: list[tuple[str, object]],
                           depth: int = 2, embedder: str | None = None, margin: float | None = None,
                           ip: str | None = None, **options) -> ClassificationJob:
    """Start a job on uploaded files. Settings are checked before the upload is unpacked, and a job that
    cannot start takes its upload folder with it."""
    _settings_check(version=version, depth=depth, embedder=embedder, margin=margin)
    folder = upload_store(owner=owner, files=files, ip=ip)
    try:
        return job_create(owner=owner, version=version, source_path=folder, depth=depth, embedder=embedder,
                          margin=margin, ip=ip, **options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _task_owned_by(task_id: str, user: User) -> None:
    cache.set(selectors.task_owner_key(task_id), user.pk, selectors.TASK_OWNER_TTL_S)


def margin_calibration_start(*, actor: User, version: TaxonomyVersion, labeled_csv: str, embedder: str | None = None,
                             depth: int = 2, target: float = 0.95) -> str:
    """Check the labeled rows and settings here, calibrate on a worker (models never load in the web
    process); returns the task id, whose result is also stored with the version."""
    from classifier import tasks

    selectors.taxonomy_change_check(user=actor, taxonomy=version.taxonomy)
    rows = evaluation.parse_labeled_csv(labeled_csv)
    embedder = _settings_check(version=version, depth=depth, embedder=embedder, margin=None)
    if not 0 < target <= 1:
        raise ValidationFailed("The target precision is a fraction between 0 and 1, e.g. 0.95.",
                               code="invalid_target")
    evaluation.rows_check(version=version, rows=rows)
    task = enqueue_default(tasks.margin_calibrate_task, kwargs={
        "version_id": version.pk, "rows": rows, "embedder_key": embedder, "depth": depth, "target": target,
        "actor_id": actor.pk})
    _task_owned_by(task.id, actor)
    return task.id


def margin_calibrate(*, actor: User | None, version: TaxonomyVersion, rows: list[tuple[str, str]],
                     embedder_key: str, depth: int, target: float) -> dict:
    """Calibrate on a worker, store the margin, and keep the rows as examples of their classes (the
    calibration itself never uses a row as its own example)."""
    scored = evaluation.score(version=version, embedder_key=embedder_key, depth=depth, rows=rows)
    calibration = evaluation.calibrate(scored, target=target)
    version_margin_store(actor=actor, version=version, embedder_key=embedder_key, depth=depth,
                         calibration=calibration)
    examples_import(actor=actor, taxonomy=version.taxonomy, rows=rows, source=LabeledExample.Source.CALIBRATION)
    return calibration


@transaction.atomic
def version_margin_override(*, actor: User, version: TaxonomyVersion, embedder_key: str, depth: int, margin: float,
                            ip: str | None = None) -> TaxonomyVersion:
    """Jobs then use `margin`; the curve stays, and says what precision and rerank share it gives."""
    selectors.taxonomy_change_check(user=actor, taxonomy=version.taxonomy)
    version = TaxonomyVersion.objects.select_for_update().get(pk=version.pk)
    key = f"{embedder_key}@{depth}"
    calibration = version.margins.get(key)
    if calibration is None:
        raise ValidationFailed(f"{version} has no calibrated margin for {embedder_key} at depth {depth}: "
                               "calibrate first.", code="not_calibrated")
    if not 0 <= margin <= 1:
        raise ValidationFailed("The margin is a cosine difference between 0 and 1, e.g. 0.02.",
                               code="invalid_margin")
    calibrated = calibration.get("calibrated_margin", calibration["margin"])
    point = evaluation.curve_point(calibration.get("curve") or [], margin)
    version.margins = {**version.margins, key: {
        **calibration, "margin": margin, "calibrated_margin": calibrated,
        "precision": point["precision"] if point else None, "rerank_share": point["rerank_share"] if point else None,
        "overridden_by": actor.get_username() if margin != calibrated else ""}}
    version.save(update_fields=["margins"])
    audit_record(actor=actor, action="classifier.margin.overridden", target=version, ip=ip,
                 details={"embedder": embedder_key, "depth": depth, "margin": margin, "calibrated": calibrated})
    return version


def evaluation_start(*, actor: User, taxonomy: Taxonomy, labeled_csv: str, sides: list[dict]) -> str:
    """Evaluate settings side by side on a worker. Each side: version (number; None = latest: its label
    text), embedder, depth, margin (None = calibrated or default), rerank_model ("" = no rerank).
    Any member may evaluate; the rows become examples of the taxonomy only when the actor may change it."""
    from classifier import tasks

    rows = evaluation.parse_labeled_csv(labeled_csv)
    if not sides:
        raise ValidationFailed("Give at least one setting to evaluate.", code="no_settings")
    settings_list = []
    for side in sides:
        version = selectors.version_get(taxonomy=taxonomy, number=side.get("version"))
        embedder = _settings_check(version=version, depth=side.get("depth", 2), embedder=side.get("embedder"),
                                   margin=side.get("margin"))
        evaluation.rows_check(version=version, rows=rows)
        settings_list.append({"version_id": version.pk, "embedder_key": embedder, "depth": side.get("depth", 2),
                              "margin": side.get("margin"), "rerank_model": (side.get("rerank_model") or "").strip(),
                              "use_examples": bool(side.get("use_examples", True))})
    task = enqueue_default(tasks.evaluation_run_task, kwargs={
        "version_id": settings_list[0]["version_id"], "rows": rows, "settings_list": settings_list,
        "user": actor.get_username(), "user_id": actor.pk,
        "learn": selectors.taxonomy_may_change(user=actor, taxonomy=taxonomy)})
    _task_owned_by(task.id, actor)
    return task.id
