"""Classifier reads, and who may change what.

Jobs are private to their owner unless shared (then readable by every member); admins see all.
Taxonomies are the team's shared vocabulary: every member reads them and starts jobs with them, but only
the owner and admins change them (labels, examples, margins, calibration). There is no per-taxonomy
sharing: a member who wants a variant imports a copy under another name.
Someone else's object gets a 404 where its reader may not see it, a 403 where they may see but not change it.
"""
from celery.result import AsyncResult
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import User
from classifier.models import ClassificationJob, ClassificationResult, Taxonomy, TaxonomyNode, TaxonomyVersion
from sparkportal.celery import app as celery_app


def taxonomy_list(*, user: User) -> QuerySet[Taxonomy]:
    return Taxonomy.objects.select_related("owner").prefetch_related("versions")


def taxonomy_get(*, name: str) -> Taxonomy:
    taxonomy = Taxonomy.objects.select_related("owner").filter(name=name).first()
    if taxonomy is None:
        raise Http404(f"No taxonomy named {name!r}.")
    return taxonomy


def taxonomy_may_change(*, user: User, taxonomy: Taxonomy) -> bool:
    return taxonomy.owner_id == user.pk or user.is_portal_admin


def taxonomy_change_check(*, user: User, taxonomy: Taxonomy) -> None:
    """Raises PermissionDenied (403: every member sees taxonomies) unless `user` may change `taxonomy`."""
    if not taxonomy_may_change(user=user, taxonomy=taxonomy):
        owner = taxonomy.owner.get_username()
        raise PermissionDenied(f"Taxonomy {taxonomy.name!r} belongs to {owner}: only {owner} or an admin may change "
                               "its labels, examples or margins. Import a copy under another name to change your own.")


def taxonomy_get_for_change(*, user: User, name: str) -> Taxonomy:
    taxonomy = taxonomy_get(name=name)
    taxonomy_change_check(user=user, taxonomy=taxonomy)
    return taxonomy


def version_get(*, taxonomy: Taxonomy, number: int | None = None) -> TaxonomyVersion:
    qs = taxonomy.versions.all()
    version = qs.filter(number=number).first() if number else qs.order_by("-number").first()
    if version is None:
        raise Http404(f"Taxonomy {taxonomy.name} has no version {number}.")
    return version


def version_get_by_id(*, version_id: int) -> TaxonomyVersion:
    version = TaxonomyVersion.objects.select_related("taxonomy").filter(pk=version_id).first()
    if version is None:
        raise Http404("No such taxonomy version.")
    return version


def node_get(*, node_id: int) -> TaxonomyNode:
    node = TaxonomyNode.objects.select_related("version__taxonomy__owner").filter(pk=node_id).first()
    if node is None:
        raise Http404("No such taxonomy node.")
    return node


def node_get_for_change(*, user: User, node_id: int) -> TaxonomyNode:
    node = node_get(node_id=node_id)
    taxonomy_change_check(user=user, taxonomy=node.version.taxonomy)
    return node


def tree(*, version: TaxonomyVersion) -> list[dict]:
    """Nested [{node, children: [...]}] in code order."""
    nodes = list(version.nodes.order_by("position"))
    items = {n.pk: {"node": n, "children": []} for n in nodes}
    roots = []
    for n in nodes:
        (items[n.parent_id]["children"] if n.parent_id else roots).append(items[n.pk])
    return roots


def job_list_visible(*, user: User) -> QuerySet[ClassificationJob]:
    qs = ClassificationJob.objects.select_related("owner", "version__taxonomy")
    if user.is_portal_admin:
        return qs
    return qs.filter(Q(owner=user) | Q(shared=True))


def job_get_visible(*, user: User, job_id: int) -> ClassificationJob:
    job = job_list_visible(user=user).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job among yours.")
    return job


def job_get_own(*, user: User, job_id: int) -> ClassificationJob:
    """For changes: the owner or an admin (a shared job is readable, not writable, by others: 403)."""
    job = job_get_visible(user=user, job_id=job_id)
    if job.owner_id != user.pk and not user.is_portal_admin:
        raise PermissionDenied(f"Job {job.pk} belongs to {job.owner.get_username()} and is shared for reading: "
                               "only its owner or an admin may change it.")
    return job


def result_list(*, job: ClassificationJob, code: str = "", method: str = "", min_confidence: float | None = None,
                max_confidence: float | None = None, reason: str = "") -> QuerySet[ClassificationResult]:
    qs = job.results.all().order_by("path")
    if code:
        qs = qs.filter(code__startswith=code)
    if method:
        qs = qs.filter(method=method)
    if min_confidence is not None:
        qs = qs.filter(confidence__gte=min_confidence)
    if max_confidence is not None:
        qs = qs.filter(confidence__lte=max_confidence)
    if reason:
        qs = qs.filter(reason__icontains=reason)
    return qs


def result_get_own(*, user: User, result_id: int) -> ClassificationResult:
    result = ClassificationResult.objects.select_related("job__version").filter(pk=result_id).first()
    if result is None:
        raise Http404("No such result.")
    job_get_own(user=user, job_id=result.job_id)
    return result


def rerank_share(job: ClassificationJob) -> float:
    return job.rerank_share


# Who started a calibration or evaluation task: only they (or an admin) may read its result.
TASK_OWNER_TTL_S = 7 * 24 * 3600


def task_owner_key(task_id: str) -> str:
    return f"classifier.task.{task_id}"


def task_get_own(*, user: User, task_id: str) -> AsyncResult:
    owner = cache.get(task_owner_key(task_id))
    if owner is None or (owner != user.pk and not user.is_portal_admin):
        raise Http404("No such task among yours.")
    return AsyncResult(task_id, app=celery_app)


def task_state(task: AsyncResult) -> dict:
    """{task_id, state, result, error}: the result once it succeeded, the error's message once it failed."""
    if task.failed():
        return {"task_id": task.id, "state": task.state, "result": None, "error": str(task.result)}
    return {"task_id": task.id, "state": task.state, "result": task.result if task.successful() else None,
            "error": None}


def version_margins(*, version: TaxonomyVersion) -> list[dict]:
    """The calibrated margins of a version, one per embedder and depth, in key order."""
    items = []
    for n, (key, calibration) in enumerate(sorted(version.margins.items()), start=1):
        embedder, _, depth = key.rpartition("@")
        items.append({**calibration, "key": key, "embedder": embedder, "depth": int(depth or 0),
                      "dom_id": f"margin-curve-{n}"})
    return items


def node_labels(*, version: TaxonomyVersion) -> dict[str, str]:
    return dict(version.nodes.values_list("code", "label_path"))


def evaluation_reports(*, taxonomy: Taxonomy, reports: list[dict]) -> list[dict]:
    """The reports of an evaluation, with the label of each code in its most confused pairs."""
    labels: dict[int, dict[str, str]] = {}
    shown = []
    for report in reports:
        number = report.get("version")
        if number not in labels:
            labels[number] = node_labels(version=version_get(taxonomy=taxonomy, number=number))
        confused = [{**pair, "expected_label": labels[number].get(pair["expected"], ""),
                     "got_label": labels[number].get(pair["got"], "")} for pair in report.get("confused", [])]
        shown.append({**report, "confused": confused})
    return shown
