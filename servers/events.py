"""Group names and payloads of the servers app's live events."""
from typing import TypedDict

from servers.metrics import derive
from sparkportal.events import publish


def metrics_group(server_id: int) -> str:
    """The engine figures of one server, one `metrics.sample` per scrape."""
    return f"servers.metrics.{server_id}"


class MetricsSamplePayload(derive.Figures):
    """One scrape's figures (the fields of servers.metrics.derive.Figures) for one server at one time."""

    server_id: int
    at: str


PAYLOAD_FIELDS: tuple[str, ...] = ("interval_s", *derive.FIGURE_FIELDS)


def metrics_payload(sample) -> MetricsSamplePayload:
    """A ServerMetricSample as the browser and the REST API see it."""
    payload = {field: getattr(sample, field) for field in PAYLOAD_FIELDS}
    return {"server_id": sample.server_id, "at": sample.at.isoformat(), **payload}  # type: ignore[typeddict-item]


def send_metrics_sample(payload: MetricsSamplePayload) -> None:
    publish(metrics_group(payload["server_id"]), "metrics.sample", dict(payload))
SERVERS_GROUP = "servers.servers"


def server_group(server_id: int) -> str:
    return f"servers.server.{server_id}"


def log_group(server_id: int) -> str:
    return f"servers.log.{server_id}"


class ServerStatusPayload(TypedDict):
    server_id: int
    node: str
    served_model_name: str
    port: int
    status: str
    reason: str
    failure_code: str
    pid: int | None
    at: str


class ServerLogPayload(TypedDict):
    server_id: int
    lines: list[str]
    rotated: bool


def send_server_status(payload: ServerStatusPayload) -> None:
    publish(server_group(payload["server_id"]), "server.status", dict(payload))
    publish(SERVERS_GROUP, "server.status", dict(payload))


def send_server_log(payload: ServerLogPayload) -> None:
    publish(log_group(payload["server_id"]), "server.log", dict(payload))
