"""Group names and payloads of the benchmarks app's live events."""
import time
from typing import TypedDict

from sparkportal.events import publish

RUNS_GROUP = "benchmarks.runs"
_last_progress: dict[int, float] = {}
PROGRESS_INTERVAL_S = 1.0


def run_group(run_id: int) -> str:
    return f"benchmarks.run.{run_id}"


class RunProgressPayload(TypedDict):
    run_id: int
    status: str
    phase: str
    profile: str
    profile_index: int
    profiles_total: int
    repeat: int
    repeats: int
    eta_s: float | None
    message: str


def send_run_progress(payload: RunProgressPayload, *, force: bool = False) -> None:
    """At most about one progress message a second per run, except for phase changes (`force`)."""
    now = time.monotonic()
    run_id = payload["run_id"]
    if not force and now - _last_progress.get(run_id, 0.0) < PROGRESS_INTERVAL_S:
        return
    _last_progress[run_id] = now
    publish(run_group(run_id), "benchmark.progress", dict(payload))
    publish(RUNS_GROUP, "benchmark.progress", dict(payload))


def send_run_status(*, run_id: int, status: str, message: str) -> None:
    data = {"run_id": run_id, "status": status, "message": message}
    publish(run_group(run_id), "benchmark.status", data)
    publish(RUNS_GROUP, "benchmark.status", data)


def send_summary(*, run_id: int, summary: dict) -> None:
    """A profile of the run finished: its row of the result table."""
    publish(run_group(run_id), "benchmark.summary", {"run_id": run_id, **summary})
