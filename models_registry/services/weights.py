"""Weights on disk, per node: each GPU host has its own Hugging Face cache, so listing it (a scan), reading its
free disk and deleting from it run as tasks on that node's queue. The web side asks and reads the stored result.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import require_operator
from accounts.services import audit_record
from models_registry import clients, events, in_use, validation
from models_registry.models import Download, NodeWeights, WeightsDeletion
from nodes.models import Node
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import InvalidTransition, ValidationFailed

log = logging.getLogger(__name__)
GB = 1e9
# A scan asked for this recently and not back yet covers a new request: five open tabs send one task.
SCAN_COALESCE = timedelta(seconds=30)
D = WeightsDeletion.Status


def _in_use_message(repo_id: str, node: Node, users: list[dict]) -> str:
    names = ", ".join(f"{u['name']} on {node.name}:{u['port']} ({u['status']})" for u in users)
    return f"The weights of {repo_id} are in use by {names}: stop those servers first."


def _wrong_host(node: Node) -> str | None:
    """A task meant for another host must not read or delete this host's cache."""
    if node.name == settings.NODE_NAME:
        return None
    return (f"This task for node {node.name} ran on the worker of {settings.NODE_NAME}: queue {node.queue} must be "
            f"consumed only by {node.name}'s worker (started with PORTAL_NODE_NAME={node.name}).")


# --- scans --------------------------------------------------------------------------------------------


def weights_scan_request(*, user: User, node: Node) -> NodeWeights:
    """Ask the node's worker for a fresh scan of its cache; the result arrives as a `weights.scan` event.

    Operators only: a scan walks a whole cache on the node's disk, and members could make every node
    do it in a loop."""
    from models_registry.tasks import weights_scan_task

    require_operator(user)

    try:
        with transaction.atomic():
            row, _ = NodeWeights.objects.get_or_create(node=node)
    except IntegrityError:
        row = NodeWeights.objects.get(node=node)  # two pages asked in the same instant
    now = timezone.now()
    asked = NodeWeights.objects.filter(pk=row.pk).filter(
        Q(requested_at=None) | Q(requested_at__lt=now - SCAN_COALESCE) | Q(scanned_at__gte=F("requested_at"))
    ).update(requested_at=now)
    if asked:
        # Expires: a node whose worker is down must not find a pile of stale scans when it comes back.
        transaction.on_commit(lambda: enqueue_on_node(weights_scan_task, node, node.pk, expires=120))
    row.refresh_from_db()
    return row


def weights_scan_run(*, node_id: int) -> NodeWeights:
    """The scan task's body, on the node's worker: huggingface_hub's cache scan plus the disk's free space."""
    from nodes.models import Node

    node = Node.objects.get(pk=node_id)
    row, _ = NodeWeights.objects.get_or_create(node=node)
    values: dict = {"scanned_at": timezone.now(), "error": ""}
    if (wrong := _wrong_host(node)) is not None:
        values["error"] = wrong
    else:
        try:
            repos, warnings = clients.scan()
            folder = clients.cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            usage = shutil.disk_usage(folder)
            values.update(path=str(folder), repos=[asdict(r) for r in repos], warnings=warnings,
                          free_bytes=usage.free, total_bytes=usage.total)
        except OSError as exc:
            values["error"] = f"Could not read the weights folder {clients.cache_dir()} on {node.name}: {exc}"
    NodeWeights.objects.filter(pk=row.pk).update(**values)
    row.refresh_from_db()
    events.send_weights_scan(row)
    return row


# --- deletions ----------------------------------------------------------------------------------------


@transaction.atomic
def weights_delete_request(*, node: Node, repo_id: str, confirm: str = "", actor: User | None,
                           ip: str | None = None) -> tuple[WeightsDeletion, bool]:
    """Queue deleting a repo's weights from a node's cache; returns (deletion, joined).

    `confirm` must repeat the repo id: deleting tens of gigabytes deserves a second look. Refused at once
    while a queued/starting/ready server on that node uses the weights or a download of them runs there;
    the task checks again right before deleting.
    """
    if (msg := validation.check_repo_id(repo_id)) is not None:
        raise ValidationFailed(msg)
    if confirm != repo_id:
        raise ValidationFailed(f"To delete the weights of {repo_id}, confirm by typing the repo id exactly.",
                               code="confirmation_required")
    users = in_use.weights_users(repo_id=repo_id, node=node)
    if users:
        raise InvalidTransition(_in_use_message(repo_id, node, users), code="weights_in_use")
    if Download.objects.filter(node=node, repo_id=repo_id, status__in=Download.ACTIVE).exists():
        raise InvalidTransition(f"{repo_id} is downloading on {node.name} right now: cancel the download first.",
                                code="download_running")
    existing = WeightsDeletion.objects.filter(node=node, repo_id=repo_id, status__in=WeightsDeletion.ACTIVE).first()
    if existing is not None:
        return existing, True
    deletion = WeightsDeletion(node=node, repo_id=repo_id, ip=ip,
                               requested_by=actor if actor is not None and actor.pk else None)
    deletion.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            deletion.save()
    except IntegrityError:
        return WeightsDeletion.objects.get(node=node, repo_id=repo_id, status__in=WeightsDeletion.ACTIVE), True
    from models_registry.tasks import weights_delete_task

    transaction.on_commit(lambda: enqueue_on_node(weights_delete_task, node, deletion.pk))
    transaction.on_commit(lambda: events.send_weights_deletion(deletion))
    return deletion, False


def weights_deletion_run(*, deletion_id: int) -> WeightsDeletion | None:
    """The delete task's body, on the node's worker. Steps:

    1. Claim the row (queued -> running); a duplicate delivery claims nothing and returns.
    2. Check again: the right host, no live server of this repo on the node, no download of it running.
    3. Delete every cached revision (huggingface_hub's delete strategy) and leftovers, audit, rescan, done.
    """
    claimed = WeightsDeletion.objects.filter(pk=deletion_id, status=D.QUEUED).update(status=D.RUNNING)
    if not claimed:
        return None
    deletion = WeightsDeletion.objects.select_related("node", "requested_by").get(pk=deletion_id)
    node, repo_id = deletion.node, deletion.repo_id
    events.send_weights_deletion(deletion)
    if (wrong := _wrong_host(node)) is not None:
        return _finish(deletion, D.FAILED, code="wrong_host", error=wrong)
    # A server may have been started between the request and now: the second look is what protects it.
    users = in_use.weights_users(repo_id=repo_id, node=node)
    if users:
        return _finish(deletion, D.FAILED, code="weights_in_use", error=_in_use_message(repo_id, node, users))
    if Download.objects.filter(node=node, repo_id=repo_id, status__in=Download.ACTIVE).exists():
        return _finish(deletion, D.FAILED, code="download_running",
                       error=f"{repo_id} started downloading on {node.name}: cancel the download first.")
    if not clients.repo_folder(repo_id).exists():
        return _finish(deletion, D.FAILED, code="not_found",
                       error=f"No weights of {repo_id} on {node.name} ({clients.cache_dir()}): refresh the list.")
    try:
        freed = clients.delete_repo(repo_id=repo_id)
    except OSError as exc:
        return _finish(deletion, D.FAILED, code="error", error=f"Could not delete {repo_id} on {node.name}: {exc}")
    audit_record(actor=deletion.requested_by, action="models.weights.deleted", target_type="models_registry.weights",
                 target_id=repo_id, ip=deletion.ip,
                 details={"repo_id": repo_id, "node": node.name, "freed_gb": round(freed / GB, 2)})
    # List the cache again before reporting done, so whoever hears "done" reads the fresh list.
    weights_scan_run(node_id=node.pk)
    return _finish(deletion, D.DONE, freed_bytes=freed)


def _finish(deletion: WeightsDeletion, status: str, *, code: str = "", error: str = "",
            freed_bytes: int = 0) -> WeightsDeletion:
    WeightsDeletion.objects.filter(pk=deletion.pk, status=D.RUNNING).update(
        status=status, error_code=code, error=error, freed_bytes=freed_bytes, finished_at=timezone.now())
    deletion.refresh_from_db()
    if status == D.FAILED:
        log.info("deleting %s on %s refused: %s", deletion.repo_id, deletion.node.name, error)
    events.send_weights_deletion(deletion)
    return deletion
