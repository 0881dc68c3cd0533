"""Classifier writes: taxonomies and their versions, jobs (create, cancel, resume), corrections, the rerank's
temporary API keys."""
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts import services as account_services
from accounts.models import ApiKey, User
from accounts.services import audit_record
from classifier import embedders, rerank, scan, taxonomy_yaml
from classifier.models import ClassificationJob, ClassificationResult, Taxonomy, TaxonomyNode, TaxonomyVersion
from sparkportal.exceptions import InvalidTransition, ValidationFailed

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# As long as the task that holds the key may run (its Celery time limit): a worker killed mid-run leaves a
# key that is useless soon after, and a live run never outlives its key.
JOB_KEY_LIFETIME = timedelta(hours=24)
EVALUATION_KEY_LIFETIME = timedelta(hours=1, minutes=5)


def _create_nodes(version: TaxonomyVersion, parsed: list[taxonomy_yaml.ParsedNode]) -> None:
    """Parents are saved before children (parse() orders by depth); position follows the codes."""
    by_code: dict[str, TaxonomyNode] = {}
    positions = {code: i for i, code in enumerate(sorted((p.code for p in parsed),
                                                         key=lambda c: [int(x) for x in c.split(".")]))}
    for item in parsed:
        parent = by_code.get(item.parent_code) if item.parent_code else None
        node = TaxonomyNode(version=version, parent=parent, code=item.code, name=item.name,
                            description=item.description, keywords=item.keywords, depth=item.code.count(".") + 1,
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
    parsed = taxonomy_yaml.parse(yaml_text)
    taxonomy, created = Taxonomy.objects.select_for_update().get_or_create(name=name, defaults={"owner": actor})
    if not created and taxonomy.owner_id != actor.pk and not actor.is_portal_admin:
        raise ValidationFailed(f"Taxonomy {name!r} belongs to {taxonomy.owner.get_username()}: pick another name.",
                               code="name_taken")
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
    if name is not None and not name.strip():
        raise ValidationFailed("A label cannot be empty.", code="empty_label")
    number = (taxonomy.versions.aggregate(m=Max("number"))["m"] or 0) + 1
    version = TaxonomyVersion.objects.create(taxonomy=taxonomy, number=number, created_by=actor,
                                             note=f"edited {node.code}", source="")
    copies: dict[int, TaxonomyNode] = {}
    changed = None
    for src in old.nodes.order_by("depth", "position"):
        new = TaxonomyNode(version=version, parent=copies.get(src.parent_id), code=src.code, name=src.name,
                           description=src.description, keywords=src.keywords, depth=src.depth,
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


def _globs(value) -> list[str]:
    if isinstance(value, str):
        value = re.split(r"[,\n]", value)
    return [g.strip() for g in (value or []) if g and g.strip()]


@transaction.atomic
def job_create(*, owner: User, version: TaxonomyVersion, source_path: str, depth: int = 2,
               embedder: str | None = None, margin: float | None = None, rerank_model: str | None = None,
               include=None, exclude=None, max_bytes: int | None = None, shared: bool = False,
               ip: str | None = None, enqueue: bool = True) -> ClassificationJob:
    source = scan.check_source(source_path)
    uploads = scan.uploads_root()
    if source.is_relative_to(uploads) and not source.is_relative_to(uploads / owner.get_username()):
        raise ValidationFailed("That upload folder belongs to someone else.", code="path_not_yours")
    max_depth = max(version.nodes.values_list("depth", flat=True), default=1)
    if not 1 <= depth <= max_depth:
        raise ValidationFailed(f"Depth {depth} is not in this taxonomy: choose 1 to {max_depth} (start at 2).",
                               code="invalid_depth")
    embedder = embedder or settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
    embedders.get_spec(embedder)
    if margin is not None and not 0 <= margin <= 1:
        raise ValidationFailed("The margin is a cosine difference between 0 and 1.", code="invalid_margin")
    job = ClassificationJob(
        owner=owner, version=version, source_path=str(source), depth=depth, embedder=embedder,
        margin=margin if margin is not None else default_margin(version, embedder, depth),
        rerank_model=settings.PORTAL_CLASSIFIER_LLM_MODEL if rerank_model is None else rerank_model.strip(),
        include=_globs(include), exclude=_globs(exclude), shared=shared,
        max_bytes=max_bytes or settings.PORTAL_CLASSIFIER_MAX_BYTES)
    job.full_clean()
    job.save()
    audit_record(actor=owner, action="classifier.job.created", target=job, ip=ip,
                 details={"source": job.source_path, "taxonomy": str(version), "depth": depth, "embedder": embedder,
                          "margin": job.margin, "rerank_model": job.rerank_model})
    if enqueue:
        _enqueue(job)
    return job


def _enqueue(job: ClassificationJob) -> None:
    from classifier.tasks import classification_job_run_task

    transaction.on_commit(lambda: classification_job_run_task.apply_async(args=[job.pk], queue="default"))


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
    audit_record(actor=actor, action="classifier.result.corrected", target=result, ip=ip,
                 details={"job": result.job_id, "path": result.path, "from": before, "to": node.code})
    return result


def job_plan_apply(*, actor: User, job: ClassificationJob, target: str, mode: str = "copy",
                   ip: str | None = None) -> dict:
    """Copy or symlink a finished job's files into a Johnny-Decimal tree under `target` (inside the roots)."""
    from classifier import exports

    if mode not in ("copy", "symlink"):
        raise ValidationFailed("mode is copy or symlink.", code="invalid_mode")
    if job.status != ClassificationJob.Status.DONE:
        raise InvalidTransition(f"Job {job.pk} is {job.status}: apply the plan of a finished job.")
    target_path = scan.check_target(target)
    plan = exports.apply_plan(job, target=str(target_path), mode=mode)
    outcome = exports.apply(plan)
    audit_record(actor=actor, action="classifier.job.applied", target=job, ip=ip,
                 details={"target": str(target_path), "mode": mode, "placed": outcome["placed"],
                          "skipped": len(outcome["skipped"])})
    return outcome


MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024


def upload_store(*, owner: User, files: list[tuple[str, object]], ip: str | None = None) -> str:
    """Unpack uploaded files (a .zip is extracted) into a fresh folder a job can then read.

    Names are reduced to their safe relative parts (no absolute paths, no '..'), and the unpacked size
    is capped, so an archive cannot write outside its folder or fill the disk."""
    import uuid
    import zipfile
    from pathlib import Path, PurePosixPath

    folder = scan.uploads_root() / owner.get_username() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    total = 0

    def safe(name: str) -> Path | None:
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
        return folder.joinpath(*parts) if parts else None

    def write(target: Path | None, chunks) -> None:
        nonlocal total
        if target is None:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in chunks:
                total += len(chunk)
                if total > MAX_UPLOAD_BYTES:
                    raise ValidationFailed(f"The upload unpacks to more than {MAX_UPLOAD_BYTES // 2**30} GB: "
                                           "put the files under an archive root instead.", code="upload_too_large")
                out.write(chunk)

    for name, fh in files:
        if name.lower().endswith(".zip"):
            try:
                archive = zipfile.ZipFile(fh)
            except zipfile.BadZipFile:
                raise ValidationFailed(f"{name} is not a readable zip file.", code="bad_zip") from None
            for info in archive.infolist():
                if not info.is_dir():
                    with archive.open(info) as member:
                        write(safe(info.filename), iter(lambda m=member: m.read(1 << 20), b""))
        else:
            write(safe(Path(name).name), fh.chunks() if hasattr(fh, "chunks") else [fh.read()])
    audit_record(actor=owner, action="classifier.upload.stored", target_type="classifier.upload",
                 target_id=folder.name, ip=ip, details={"files": [n for n, _ in files], "bytes": total})
    return str(folder)


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
