"""Schemas of the servers REST API (servers.api)."""
from datetime import datetime

from ninja import Schema
from pydantic import Field

from engines import redact
from servers.models import Server


class ServerOut(Schema):
    id: int
    node: str
    profile: str | None
    served_model_name: str
    engine: str
    base_url: str
    port: int
    status: str
    status_reason: str
    failure_code: str
    pid: int | None
    engine_version: str
    gpu_memory_utilization: float
    measured_memory_gb: float | None
    restart_policy: str
    restart_attempts: int
    argv: list[str]
    last_log_lines: str
    created_at: datetime
    started_at: datetime | None
    ready_at: datetime | None
    stopped_at: datetime | None
    cleared_at: datetime | None
    sleep_level: int | None
    slept_at: datetime | None
    sleep_idle_minutes: int | None
    idle_sleep_level: int
    group: int | None = Field(None, alias="group_id")
    rank: int

    @staticmethod
    def resolve_node(obj: Server) -> str:
        return obj.node.name

    @staticmethod
    def resolve_argv(obj: Server) -> list[str]:
        return redact.argv_redact(obj.argv or [])  # rows stored before secrets were hidden at write

    @staticmethod
    def resolve_status_reason(obj: Server) -> str:
        return redact.text_redact(obj.status_reason)

    @staticmethod
    def resolve_last_log_lines(obj: Server) -> str:
        return redact.text_redact(obj.last_log_lines)

    @staticmethod
    def resolve_profile(obj: Server) -> str | None:
        return obj.profile.name if obj.profile_id else None


class ServerStartIn(Schema):
    profile: str = Field(description="Profile name.")
    node: str | None = Field(None, description="Node name; the only node when there is one.")
    port: int | None = Field(None, description="Omit to take the first free port of the engine range.")
    gpu_memory_utilization: float | None = Field(None, description="Defaults to the profile's.")
    cuda_visible_devices: str = ""
    restart_policy: str = Field("never", pattern="^(never|on-failure)$")
    allow_replica: bool = False


class SleepIn(Schema):
    level: int = Field(1, ge=1, le=2, description="1: weights offloaded to host RAM, KV cache dropped (fast wake); "
                                                  "2: both dropped (the wake reloads the weights).")


class SwapIn(Schema):
    sleep: int = Field(description="The ready server to put to sleep.")
    wake: int = Field(description="The sleeping server to wake in its place (same node).")
    level: int = Field(1, ge=1, le=2)


class SleepPolicyIn(Schema):
    sleep_idle_minutes: int | None = Field(None, description="Sleep after this many idle minutes; null: never.")
    level: int = Field(1, ge=1, le=2)


class AdmissionPlanOut(Schema):
    node: str
    budget: float
    used: float
    new: float
    after: float
    total_gb: float | None
    free_gb: float | None
    need_gb: float | None
    need_source: str
    ok: bool = Field(description="Nothing refuses the start (some checks may still be unknown: see verdict).")
    verdict: str = Field(description='"ok", "refused", or "unknown" when nothing refuses the start but something '
                                     "could not be checked (listed in `unknown`).")
    errors: list[str]
    notes: list[str]
    unknown: list[str]
    fix_url: str = Field(description="Where an admin fixes what refuses the start, when there is such a page.")


class NodeOut(Schema):
    name: str
    queue: str
    memory_budget: float
    used: float
    last_heartbeat_at: datetime | None
    engines: dict
    servers: list[int]
    network_interface: str = ""
    host_ip: str | None = None


class EventOut(Schema):
    old: str
    new: str
    reason: str
    at: datetime

    @staticmethod
    def resolve_reason(obj) -> str:
        return redact.text_redact(obj.reason)


class LogOut(Schema):
    server_id: int
    lines: list[str]


class ErrorOut(Schema):
    detail: str
    code: str


class LogQuery(Schema):
    lines: int = Field(200, ge=1, le=10000)
    q: str = Field("", description="Only lines containing this text (case-insensitive), with line numbers.")


class GroupStartIn(Schema):
    profile: str = Field(max_length=100)
    nodes: list[str] | None = Field(None, max_length=16, description="Node names, the leader first; none: the "
                                                                       "portal picks them")
    gpu_memory_utilization: float | None = None
    restart_policy: str = Field("never", pattern="^(never|on-failure)$")
    allow_replica: bool = False


class GroupPreflightIn(Schema):
    profile: str = Field(max_length=100)
    nodes: list[str] | None = Field(None, max_length=16, description="Node names, the leader first; none: the "
                                                                       "portal picks them")


class GroupOnDemandIn(Schema):
    load_on_demand: bool = Field(description="A request for the model starts every rank of the stopped group.")
    unload_idle_minutes: int | None = Field(None, description="Stop every rank after this many minutes without a "
                                                              "request (1 to 10080); null: never.")


class GroupPreflightOut(Schema):
    ok: bool
    master: str
    reports: list[dict]


class GroupRankOut(Schema):
    server_id: int
    rank: int
    node: str
    status: str
    status_reason: str
    pid: int | None


class GroupOut(Schema):
    id: int
    profile: str
    served_model_name: str
    node_count: int
    master_addr: str
    master_port: int
    status: str
    status_reason: str
    failure_code: str
    restart_policy: str
    restart_attempts: int
    load_on_demand: bool
    unload_idle_minutes: int | None
    preflight: dict
    created_at: datetime
    ready_at: datetime | None
    stopped_at: datetime | None
    ranks: list[GroupRankOut]

    @staticmethod
    def resolve_profile(obj) -> str:
        return obj.profile.name

    @staticmethod
    def resolve_status_reason(obj) -> str:
        return redact.text_redact(obj.status_reason)

    @staticmethod
    def resolve_ranks(obj) -> list[dict]:
        return [{"server_id": s.pk, "rank": s.rank, "node": s.node.name, "status": s.status,
                 "status_reason": redact.text_redact(s.status_reason), "pid": s.pid}
                for s in sorted(obj.ranks.all(), key=lambda s: s.rank)]
