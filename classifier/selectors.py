"""Classifier reads. Jobs are private to their owner unless shared; admins see all."""
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import User
from classifier.models import ClassificationJob, ClassificationResult, Taxonomy, TaxonomyNode, TaxonomyVersion


def taxonomy_list(*, user: User) -> QuerySet[Taxonomy]:
    return Taxonomy.objects.select_related("owner").prefetch_related("versions")


def taxonomy_get(*, name: str) -> Taxonomy:
    taxonomy = Taxonomy.objects.filter(name=name).first()
    if taxonomy is None:
        raise Http404(f"No taxonomy named {name!r}.")
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
    node = TaxonomyNode.objects.select_related("version__taxonomy").filter(pk=node_id).first()
    if node is None:
        raise Http404("No such taxonomy node.")
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
    """For changes: the owner or an admin (a shared job is readable, not writable, by others)."""
    job = job_get_visible(user=user, job_id=job_id)
    if job.owner_id != user.pk and not user.is_portal_admin:
        raise Http404("No such job among yours.")
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
