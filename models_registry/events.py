"""Group names and payloads of the model registry's live events."""
from __future__ import annotations

from typing import TypedDict

from asgiref.sync import async_to_sync
from django.utils import timezone

from sparkportal.events import apublish

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
