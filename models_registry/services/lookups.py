"""Looking a repo up on the hub (file sizes, config.json) for memory estimates before download.

A web request never waits on the hub: it queues a task on a node's queue (the node's token and network
are what a download will use, and config.json lands in that node's cache) and the page follows the
`repo.lookup` event. The hub call itself runs under a deadline, so a hub that never answers ends as a
failure that says so.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from models_registry import clients, events, validation
from models_registry.models import RepoSnapshot
from models_registry.services.tokens import hub_token_reveal
from nodes.models import Node
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import ValidationFailed

# Beyond the hub's deadline, time for the task to be picked up; after that a queued look-up counts as lost.
QUEUE_GRACE = timedelta(seconds=30)


class DeadlineExceeded(Exception):
    pass


def ask_hub(*, repo_id: str, revision: str, token: str | None) -> tuple[str, list[dict], dict]:
    """(commit, [{"path", "size"}], config.json) of a repo revision: two hub calls and a small download."""
    commit, files = clients.repo_listing(repo_id=repo_id, revision=revision, token=token)
    config = clients.read_config(repo_id=repo_id, revision=commit, token=token) \
        if any(f.path == "config.json" for f in files) else {}
    return commit, [{"path": f.path, "size": f.size} for f in files], config


T = TypeVar("T")


def with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """Run fn in a thread and wait at most `seconds`. huggingface_hub's HTTP client has no timeout of its
    own; a stuck call is left behind in its daemon thread rather than holding the task forever."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="hub-lookup", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise DeadlineExceeded()
    if "error" in box:
        raise box["error"]
    return box["value"]


def lookup_lost(snap: RepoSnapshot) -> bool:
    """Queued or running for longer than any look-up takes: its worker is gone or was never there."""
    if not snap.lookup_active or snap.lookup_requested_at is None:
        return False
    limit = timedelta(seconds=settings.PORTAL_HUB_LOOKUP_TIMEOUT_S) + QUEUE_GRACE
    return snap.lookup_requested_at < timezone.now() - limit


def lookup_lost_message(snap: RepoSnapshot) -> str:
    node = snap.lookup_node.name if snap.lookup_node_id else "the node"
    return (f"No answer from {node}'s worker about {snap.repo_id}: check that the worker of {node} is running "
            "(it consumes the node's queue), then look it up again.")


def repo_lookup_request(*, repo_id: str, revision: str, node: Node) -> tuple[RepoSnapshot, bool]:
    """Queue a hub look-up of a repo revision on `node`'s queue; returns (snapshot row, joined).

    A look-up of the same revision already queued or running is joined, unless it was lost.
    """
    revision = revision or "main"
    if (msg := validation.check_repo_id(repo_id)) is not None:
        raise ValidationFailed(msg)
    if (msg := validation.check_revision(revision)) is not None:
        raise ValidationFailed(msg)
    from models_registry.tasks import repo_lookup_task

    with transaction.atomic():
        try:
            with transaction.atomic():
                snap, _ = RepoSnapshot.objects.get_or_create(repo_id=repo_id, revision=revision,
                                                             defaults={"lookup_status": "failed"})
        except IntegrityError:
            snap = RepoSnapshot.objects.get(repo_id=repo_id, revision=revision)
        now = timezone.now()
        stale = now - timedelta(seconds=settings.PORTAL_HUB_LOOKUP_TIMEOUT_S) - QUEUE_GRACE
        queued = RepoSnapshot.objects.filter(pk=snap.pk).filter(
            Q(lookup_status__in=("done", "failed")) | Q(lookup_requested_at=None) | Q(lookup_requested_at__lt=stale)
        ).update(lookup_status="queued", lookup_error="", lookup_error_code="", lookup_node=node,
                 lookup_requested_at=now)
        snap.refresh_from_db()
        if queued:
            transaction.on_commit(lambda: enqueue_on_node(repo_lookup_task, node, snap.pk))
            transaction.on_commit(lambda: events.send_repo_lookup(snap))
    return snap, not queued


def repo_lookup_run(*, snapshot_id: int) -> RepoSnapshot | None:
    """The look-up task's body: claim (queued -> running), ask the hub under a deadline, store, publish."""
    claimed = RepoSnapshot.objects.filter(pk=snapshot_id, lookup_status="queued").update(lookup_status="running")
    if not claimed:
        return None
    snap = RepoSnapshot.objects.select_related("lookup_node").get(pk=snapshot_id)
    events.send_repo_lookup(snap)
    seconds = settings.PORTAL_HUB_LOOKUP_TIMEOUT_S
    values: dict
    try:
        token = hub_token_reveal(node=snap.lookup_node)
        commit, files, config = with_deadline(
            lambda: ask_hub(repo_id=snap.repo_id, revision=snap.revision, token=token), seconds)
        values = {"lookup_status": "done", "commit": commit, "files": files, "config": config,
                  "looked_up_at": timezone.now()}
    except clients.HubError as exc:
        values = {"lookup_status": "failed", "lookup_error_code": exc.code, "lookup_error": exc.message}
    except DeadlineExceeded:
        values = {"lookup_status": "failed", "lookup_error_code": "timeout", "lookup_error": (
            f"The hub at {clients.endpoint()} did not answer within {seconds:g} s about {snap.repo_id}: check the "
            "network from this node (or HF_ENDPOINT and proxy settings), then look it up again.")}
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the page must not wait forever
        hub_error = clients.explain(exc, repo_id=snap.repo_id, revision=snap.revision)
        values = {"lookup_status": "failed", "lookup_error_code": hub_error.code, "lookup_error": hub_error.message}
    RepoSnapshot.objects.filter(pk=snap.pk, lookup_status="running").update(fetched_at=timezone.now(), **values)
    snap.refresh_from_db()
    events.send_repo_lookup(snap)
    return snap
