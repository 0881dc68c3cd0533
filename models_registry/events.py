"""Group names and payloads of the model registry's live events."""
from __future__ import annotations

from typing import TypedDict

from asgiref.sync import async_to_sync
from django.utils import timezone

from sparkportal.events import apublish, publish

DOWNLOADS_GROUP = "models.downloads"  # every download, for the models page


def download_group(download_id: int) -> str:
    return f"models.download.{download_id}"


class DownloadProgressPayload(TypedDict):
    id: int
    node: str
    repo_id: str
    status: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    percent: float
    rate_bps: float
    eta_s: float | None
    current_file: str
    error: str
    error_code: str
    at: str  # when the figures were taken (ISO 8601)


def download_payload(download) -> DownloadProgressPayload:
    return {
        "id": download.pk, "node": download.node.name, "repo_id": download.repo_id, "status": download.status,
        "bytes_done": download.bytes_done, "bytes_total": download.bytes_total, "files_done": download.files_done,
        "files_total": download.files_total, "percent": download.percent, "rate_bps": round(download.rate_bps, 1),
        "eta_s": round(download.eta_s, 1) if download.eta_s is not None else None,
        "current_file": download.current_file, "error": download.error, "error_code": download.error_code,
        "at": timezone.now().isoformat(),
    }


async def _to_both(download_id: int, event_type: str, payload: dict) -> None:
    await apublish(download_group(download_id), event_type, payload)
    await apublish(DOWNLOADS_GROUP, event_type, payload)


def _publish(download_id: int, event_type: str, payload: dict) -> None:
    # One hop into the event loop for both groups: this runs beside the transfer every half second.
    async_to_sync(_to_both)(download_id, event_type, payload)


def send_download_progress(payload: DownloadProgressPayload) -> None:
    _publish(payload["id"], "download.progress", dict(payload))


def send_download_status(download) -> None:
    _publish(download.pk, "download.status", dict(download_payload(download)))


# --- weights on disk and hub look-ups -------------------------------------------------------------------

WEIGHTS_GROUP = "models.weights"  # scans and deletions of every node, for the weights page


def lookup_group(snapshot_id: int) -> str:
    return f"models.lookup.{snapshot_id}"


class WeightsScanPayload(TypedDict):
    node: str
    scanned_at: str | None
    repos: int
    free_bytes: int | None
    error: str


class WeightsDeletionPayload(TypedDict):
    id: int
    node: str
    repo_id: str
    status: str
    freed_bytes: int
    error: str
    error_code: str


class RepoLookupPayload(TypedDict):
    id: int
    repo_id: str
    revision: str
    status: str
    error: str
    error_code: str


def send_weights_scan(row) -> None:
    payload: WeightsScanPayload = {
        "node": row.node.name, "scanned_at": row.scanned_at.isoformat() if row.scanned_at else None,
        "repos": len(row.repos or []), "free_bytes": row.free_bytes, "error": row.error}
    publish(WEIGHTS_GROUP, "weights.scan", dict(payload))


def send_weights_deletion(deletion) -> None:
    payload: WeightsDeletionPayload = {
        "id": deletion.pk, "node": deletion.node.name, "repo_id": deletion.repo_id, "status": deletion.status,
        "freed_bytes": deletion.freed_bytes, "error": deletion.error, "error_code": deletion.error_code}
    publish(WEIGHTS_GROUP, "weights.deletion", dict(payload))


def send_repo_lookup(snap) -> None:
    payload: RepoLookupPayload = {
        "id": snap.pk, "repo_id": snap.repo_id, "revision": snap.revision, "status": snap.lookup_status,
        "error": snap.lookup_error, "error_code": snap.lookup_error_code}
    publish(lookup_group(snap.pk), "repo.lookup", dict(payload))
