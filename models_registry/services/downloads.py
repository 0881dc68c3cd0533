"""Downloads of weights onto a node: request/join, cancel, resume, the task body, and crash recovery."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from datetime import timedelta

import psutil
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from tqdm.auto import tqdm

from accounts.models import User
from accounts.services import audit_record
from models_registry import clients, events, validation
from models_registry.models import DEFAULT_IGNORE_PATTERNS, Download, ModelProfile, RepoSnapshot
from models_registry.services.tokens import hub_token_reveal
from nodes.models import Node
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import InvalidTransition, NotFound, ValidationFailed

log = logging.getLogger(__name__)
S = Download.Status
GB = 1e9
PROGRESS_INTERVAL_S = 0.5  # at most two progress events a second per download
DISK_MARGIN_BYTES = 256 * 1024**2


def node_resolve(node_name: str | None = None) -> Node:
    """The named node, or this host's node when no name is given."""
    from nodes import services as node_services
    from nodes.models import Node

    if not node_name:
        return node_services.node_register(name=settings.NODE_NAME)
    node = Node.objects.filter(name=node_name).first()
    if node is None:
        names = ", ".join(Node.objects.values_list("name", flat=True)) or "none yet"
        raise NotFound(f"No node named {node_name!r}: known nodes are {names}.")
    return node


def _download_enqueue(download: Download) -> None:
    from models_registry.tasks import download_run_task

    node = download.node
    transaction.on_commit(lambda: enqueue_on_node(download_run_task, node, download.pk))


@transaction.atomic
def download_request_nodes(*, actor: User | None, profile: ModelProfile, node_names: list[str],
                           ip: str | None = None) -> list[tuple[Download, bool]]:
    """A profile's weights on several nodes at once (every node when none is named): a multi-node server loads
    them on each of its nodes from the same path. All names are checked before anything is queued."""
    from nodes.models import Node

    nodes = [node_resolve(name) for name in node_names] if node_names else list(Node.objects.order_by("name"))
    return [download_request(actor=actor, node=node, profile=profile, ip=ip) for node in nodes]


def download_request(*, actor: User | None, node: Node, profile: ModelProfile | None = None, repo_id: str = "",
                     revision: str = "main", ip: str | None = None) -> tuple[Download, bool]:
    """Queue a download of a profile's repo (or a bare repo) on a node; returns (download, joined).

    A queued or running download of the same repo on the node is joined instead of starting another.
    """
    if profile is not None:
        if profile.source != ModelProfile.Source.HUB:
            raise ValidationFailed(f"Profile {profile.name} uses the local folder {profile.local_path}: there is "
                                   "nothing to download.", code="nothing_to_download")
        repo_id, revision = profile.repo_id, profile.revision or "main"
    if (msg := validation.check_repo_id(repo_id)) is not None:
        raise ValidationFailed(msg)
    if (msg := validation.check_revision(revision)) is not None:
        raise ValidationFailed(msg)
    existing = Download.objects.filter(node=node, repo_id=repo_id, status__in=Download.ACTIVE).first()
    if existing is not None:
        _requeue_if_dead(existing)
        return existing, True
    ignore = (profile.ignore_patterns if profile is not None and profile.ignore_patterns
              else DEFAULT_IGNORE_PATTERNS)
    download = Download(node=node, repo_id=repo_id, revision=revision, profile=profile, ignore_patterns=ignore,
                        requested_by=actor if actor is not None and actor.pk else None)
    download.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            download.save()
    except IntegrityError:
        # Someone else asked in the same instant: join theirs.
        return Download.objects.get(node=node, repo_id=repo_id, status__in=Download.ACTIVE), True
    audit_record(actor=actor, action="models.download.requested", target=download, ip=ip,
                 details={"repo_id": repo_id, "revision": revision, "node": node.name,
                          "profile": profile.name if profile is not None else None})
    _download_enqueue(download)
    transaction.on_commit(lambda: events.send_download_status(download))
    return download, False


@transaction.atomic
def download_cancel(*, download: Download, actor: User | None, ip: str | None = None) -> Download:
    """Stop a queued or running download; the task notices within half a second and keeps partial files."""
    updated = Download.objects.filter(pk=download.pk, status__in=Download.ACTIVE).update(
        status=S.CANCELLED, finished_at=timezone.now(), rate_bps=0, eta_s=None)
    if not updated:
        download.refresh_from_db()
        raise InvalidTransition(f"Download {download.pk} of {download.repo_id} is {download.status}, not queued or "
                                "running: nothing to cancel.")
    download.refresh_from_db()
    audit_record(actor=actor, action="models.download.cancelled", target=download, ip=ip,
                 details={"repo_id": download.repo_id, "node": download.node.name, "bytes_done": download.bytes_done})
    transaction.on_commit(lambda: events.send_download_status(download))
    return download


@transaction.atomic
def download_resume(*, download: Download, actor: User | None, ip: str | None = None) -> Download:
    """Queue a failed, cancelled or finished download again; it continues from what is on disk."""
    try:
        with transaction.atomic():
            updated = Download.objects.filter(pk=download.pk, status__in=(S.FAILED, S.CANCELLED, S.DONE)).update(
                status=S.QUEUED, error="", error_code="", finished_at=None, worker_pid=None)
    except IntegrityError as exc:
        raise InvalidTransition(f"{download.repo_id} is already downloading on {download.node.name}: follow that "
                                "download instead.", code="already_downloading") from exc
    if not updated:
        download.refresh_from_db()
        raise InvalidTransition(f"Download {download.pk} is {download.status}: only failed, cancelled or finished "
                                "downloads can be resumed.")
    download.refresh_from_db()
    audit_record(actor=actor, action="models.download.resumed", target=download, ip=ip,
                 details={"repo_id": download.repo_id, "node": download.node.name, "bytes_done": download.bytes_done})
    _download_enqueue(download)
    transaction.on_commit(lambda: events.send_download_status(download))
    return download


def _worker_alive(download: Download) -> bool:
    stale = timezone.now() - timedelta(seconds=settings.PORTAL_DOWNLOAD_STALE_SECONDS)
    if download.heartbeat_at is None or download.heartbeat_at < stale:
        return False
    # The pid can only be checked on its own host; elsewhere the heartbeat decides.
    if download.worker_pid and download.node.name == settings.NODE_NAME:
        return psutil.pid_exists(download.worker_pid)
    return True


def _requeue_if_dead(download: Download) -> bool:
    if download.status != S.RUNNING or _worker_alive(download):
        return False
    updated = Download.objects.filter(pk=download.pk, status=S.RUNNING, worker_pid=download.worker_pid).update(
        status=S.QUEUED, worker_pid=None, rate_bps=0, eta_s=None)
    if updated:
        log.info("download %s of %s lost its worker; queued again", download.pk, download.repo_id)
        download.refresh_from_db()
        _download_enqueue(download)
        transaction.on_commit(lambda: events.send_download_status(download))
    return bool(updated)


@transaction.atomic
def download_requeue_interrupted(*, node_name: str) -> list[int]:
    """Downloads left running by a worker that died on this node go back to the queue (and resume)."""
    requeued = []
    for download in Download.objects.select_related("node").filter(node__name=node_name, status=S.RUNNING):
        if _requeue_if_dead(download):
            requeued.append(download.pk)
    return requeued


# --- the task body ---------------------------------------------------------------------------------


class DownloadStopped(Exception):
    """Raised inside huggingface_hub's threads to stop a cancelled download between two chunks."""

    portal_passthrough = True


class Progress:
    """Counts what huggingface_hub reports from its download threads; the task thread reads it."""

    def __init__(self, *, base_done: int, total: int, etag_paths: dict[str, str], repo_id: str):
        self.lock = threading.Lock()
        self.base_done = base_done
        self.total = total
        self.written = 0
        self.files = 0
        self.stop = False
        self.etag_paths = etag_paths
        self.repo_id = repo_id
        self.samples: deque[tuple[float, int]] = deque(maxlen=40)
        self.resuming = ""  # the file being finished from a kept partial, if any

    def add(self, role: str, n: float) -> None:
        if self.stop:
            raise DownloadStopped()
        with self.lock:
            if role == "bytes":
                self.written += int(n)
            elif role == "files":
                self.files += int(n)

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self.lock:
            done = min(self.base_done + self.written, self.total) if self.total else self.base_done + self.written
            files = self.files
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 5.0:
            self.samples.popleft()
        (t0, d0) = self.samples[0]
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        eta = (self.total - done) / rate if rate > 0 and self.total else None
        # Also links every file in flight to its `.partial`, so a cancel or a crash keeps its bytes.
        in_flight = sorted({self.etag_paths.get(e, "") for e in clients.keep_partials(self.repo_id)} |
                           {self.resuming})
        return {"bytes_done": done, "files_done": files, "rate_bps": rate, "eta_s": eta,
                "current_file": ", ".join(p for p in in_flight if p)[:500]}


def progress_bar_class(progress: Progress, role: str = "") -> type:
    """A tqdm class for huggingface_hub that feeds `progress` and draws nothing."""

    class PortalProgressBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            desc = str(kwargs.get("desc") or "")
            # snapshot_download's bars: "Reconstructing ..." counts bytes written (resumed bytes included),
            # "Fetching N files" counts finished files, "Downloading bytes" counts network bytes (unused).
            self._role = role or ("bytes" if desc.startswith("Reconstructing") else (
                "files" if "Fetching" in desc else ""))
            super().__init__(*args, **kwargs)

        def update(self, n: int = 1) -> None:
            if n:
                self.n += n
                if self._role:
                    progress.add(self._role, n)

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            pass

        @property
        def format_dict(self):
            return {"rate": None, "n": self.n, "total": self.total}

    return PortalProgressBar


def download_run(*, download_id: int) -> Download | None:
    """The task body. Steps:

    1. Claim the row (queued -> running) or do nothing: a duplicate delivery finds it claimed.
    2. Ask the hub for the commit and file sizes; refuse early when the disk cannot hold what is missing.
    3. Run snapshot_download in a thread; every 0.5 s write progress to the row (which also tells whether
       someone cancelled) and publish it. A cancel stops the threads between two chunks.
    4. Finish as done, or failed with the reason in plain words. Partial files stay for the next attempt.
    """
    now = timezone.now()
    claimed = Download.objects.filter(pk=download_id, status=S.QUEUED).update(
        status=S.RUNNING, worker_pid=os.getpid(), started_at=now, heartbeat_at=now, error="", error_code="")
    if not claimed:
        return None
    download = Download.objects.select_related("node").get(pk=download_id)
    Download.objects.filter(pk=download_id).update(attempts=download.attempts + 1)
    events.send_download_status(download)
    try:
        token = hub_token_reveal(node=download.node)
        _prepare(download, token=token)
        outcome = _transfer(download, token=token)
    except clients.HubError as exc:
        return _finish(download, S.FAILED, code=exc.code, error=exc.message)
    if outcome is None:
        download.refresh_from_db()
        return download  # cancelled while running: the cancel already set the state
    if outcome.status == S.DONE and download.node.name == settings.NODE_NAME:
        _rescan(download.node_id)
    return outcome


def _rescan(node_id: int) -> None:
    """New weights on this host: refresh its stored list, so the weights page shows them at once."""
    from models_registry.services.weights import weights_scan_run

    try:
        weights_scan_run(node_id=node_id)
    except Exception:  # noqa: BLE001 - a finished download stays finished whatever the scan says
        log.warning("could not rescan the weights of node %s", node_id, exc_info=True)


def _prepare(download: Download, *, token: str | None) -> None:
    commit, files = clients.repo_listing(repo_id=download.repo_id, revision=download.revision, token=token)
    clients.adopt_leftovers(download.repo_id)  # a killed worker's half-written files
    RepoSnapshot.objects.update_or_create(repo_id=download.repo_id, revision=download.revision, defaults={
        "commit": commit, "files": [{"path": f.path, "size": f.size} for f in files]})
    wanted = clients.filter_files(files, allow=download.allow_patterns, ignore=download.ignore_patterns)
    total = sum(f.size for f in wanted)
    present, _complete, _partial = clients.present_bytes(repo_id=download.repo_id, commit=commit, files=wanted)
    needed = total - present
    free = clients.disk_free_bytes()
    download.commit, download.bytes_total, download.files_total = commit, total, len(wanted)
    download.bytes_done = present
    Download.objects.filter(pk=download.pk).update(commit=commit, bytes_total=total, files_total=len(wanted),
                                                   bytes_done=present)
    if needed + DISK_MARGIN_BYTES > free:
        raise clients.HubError("disk_full", (
            f"Not enough disk for {download.repo_id}: {needed / GB:.1f} GB more are needed but only "
            f"{free / GB:.1f} GB are free on {clients.cache_dir()}. Delete unused weights (Models → Weights on "
            "disk) or point HF_HOME at a bigger disk, then resume."))
    download._wanted = wanted  # type: ignore[attr-defined]


def _transfer(download: Download, *, token: str | None) -> Download | None:
    wanted = download._wanted  # type: ignore[attr-defined]
    present, _complete, partial = clients.present_bytes(repo_id=download.repo_id, commit=download.commit,
                                                        files=wanted)
    # Complete files are skipped without a progress bar and kept partials report only new bytes, so
    # what is on disk now is the base the bars add to.
    progress = Progress(base_done=present, total=download.bytes_total,
                        etag_paths={f.etag: f.path for f in wanted}, repo_id=download.repo_id)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for item in wanted:
                if item.path in partial:
                    progress.resuming = item.path
                    clients.resume_partial(repo_id=download.repo_id, commit=download.commit, item=item, token=token,
                                           tqdm_class=progress_bar_class(progress, role="bytes"))
            progress.resuming = ""
            clients.snapshot(repo_id=download.repo_id, commit=download.commit, token=token,
                             allow=download.allow_patterns, ignore=download.ignore_patterns,
                             tqdm_class=progress_bar_class(progress), max_workers=settings.PORTAL_DOWNLOAD_WORKERS)
        except BaseException as exc:  # noqa: BLE001 - handed to the task thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"download-{download.pk}", daemon=True)
    thread.start()
    while True:
        thread.join(PROGRESS_INTERVAL_S)
        if not thread.is_alive():
            break
        if not _report(download, progress):
            clients.keep_partials(download.repo_id)
            progress.stop = True
            thread.join(10)
            return None
    if failure and isinstance(failure[0], DownloadStopped):
        return None
    if failure:
        error = failure[0]
        hub_error = error if isinstance(error, clients.HubError) else clients.explain(
            error, repo_id=download.repo_id, revision=download.revision)
        _report(download, progress)
        return _finish(download, S.FAILED, code=hub_error.code, error=hub_error.message)
    clients.drop_partials(download.repo_id, [f.etag for f in wanted])
    clients.write_ref(repo_id=download.repo_id, revision=download.revision, commit=download.commit)
    download.files_done = download.files_total
    return _finish(download, S.DONE, bytes_done=download.bytes_total)


def _report(download: Download, progress: Progress) -> bool:
    """Write progress to the row and publish it; False when the row is no longer running (cancelled)."""
    figures = progress.snapshot()
    updated = Download.objects.filter(pk=download.pk, status=S.RUNNING).update(
        heartbeat_at=timezone.now(), **figures)
    if not updated:
        return False
    for key, value in figures.items():
        setattr(download, key, value)
    download.status = S.RUNNING
    events.send_download_progress(events.download_payload(download))
    return True


def _finish(download: Download, status: str, *, code: str = "", error: str = "", bytes_done: int | None = None):
    values = {"status": status, "finished_at": timezone.now(), "error_code": code, "error": error, "rate_bps": 0,
              "eta_s": None, "current_file": ""}
    if bytes_done is not None:
        values.update(bytes_done=bytes_done, files_done=download.files_total)
    updated = Download.objects.filter(pk=download.pk, status=S.RUNNING).update(**values)
    download.refresh_from_db()
    if updated:
        events.send_download_status(download)
    return download
