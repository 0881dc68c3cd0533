"""Group names and payloads of the classifier's live events."""
from typing import TypedDict

from sparkportal.events import publish


def job_group(job_id: int) -> str:
    return f"classifier.job.{job_id}"


class JobProgressPayload(TypedDict):
    job_id: int
    status: str
    files_total: int
    files_done: int
    files_skipped: int
    files_reranked: int
    rerank_share: float
    files_per_s: float
    eta_s: float | None
    message: str


def send_job_progress(payload: JobProgressPayload) -> None:
    publish(job_group(payload["job_id"]), "classifier.progress", dict(payload))
