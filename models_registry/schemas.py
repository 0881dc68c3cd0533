from datetime import datetime

from ninja import Schema
from pydantic import Field

from engines import redact


class ErrorOut(Schema):
    detail: str
    code: str


class ProfileIn(Schema):
    name: str
    source: str = "hub"
    repo_id: str = ""
    revision: str = "main"
    local_path: str = ""
    engine: str = "vllm"
    served_model_name: str = ""
    task: str = "chat"
    dtype: str = "bfloat16"
    max_model_len: int | None = 32768
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    node_count: int = 1
    distributed_backend: str = "mp"
    quantization: str = ""
    kv_cache_dtype: str = "auto"
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    enable_sleep_mode: bool = False
    extra_flags: str = ""
    extra_env: dict = {}
    notes: str = ""
    ignore_patterns: list[str] = []


class ProfilePatch(Schema):
    name: str | None = None
    source: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    local_path: str | None = None
    engine: str | None = None
    served_model_name: str | None = None
    task: str | None = None
    dtype: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    node_count: int | None = None
    distributed_backend: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enable_prefix_caching: bool | None = None
    max_num_seqs: int | None = None
    enable_sleep_mode: bool | None = None
    extra_flags: str | None = None
    extra_env: dict | None = None
    notes: str | None = None
    ignore_patterns: list[str] | None = None


class ProfileOut(Schema):
    id: int
    name: str
    source: str
    repo_id: str
    revision: str
    local_path: str
    engine: str
    served_model_name: str
    model_name: str
    task: str
    dtype: str
    max_model_len: int | None
    gpu_memory_utilization: float
    tensor_parallel_size: int
    pipeline_parallel_size: int
    node_count: int
    distributed_backend: str
    quantization: str
    kv_cache_dtype: str
    enable_prefix_caching: bool
    max_num_seqs: int | None
    enable_sleep_mode: bool
    extra_flags: str
    extra_env: dict
    notes: str
    ignore_patterns: list[str]
    catalog_name: str
    created_at: datetime
    updated_at: datetime

    # Every member reads profiles; a secret in a flag or variable stays with the profile's editors.
    @staticmethod
    def resolve_extra_flags(obj) -> str:
        return redact.text_redact(obj.extra_flags or "")

    @staticmethod
    def resolve_extra_env(obj) -> dict:
        return redact.env_redact(obj.extra_env if isinstance(obj.extra_env, dict) else {})


class CloneIn(Schema):
    name: str


class CommandOut(Schema):
    argv: list[str]
    command_line: str


class DownloadIn(Schema):
    node: str = ""


class DownloadNodesIn(Schema):
    nodes: list[str] = Field(default_factory=list, max_length=64, description="Node names; empty: every node")


class RepoDownloadIn(Schema):
    repo_id: str
    revision: str = "main"
    node: str = ""


class DownloadOut(Schema):
    id: int
    node: str
    repo_id: str
    revision: str
    commit: str
    profile: str | None
    status: str
    bytes_done: int
    bytes_total: int
    percent: float
    files_done: int
    files_total: int
    current_file: str
    rate_bps: float
    eta_s: float | None
    error_code: str
    error: str
    attempts: int
    joined: bool = False
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_node(obj) -> str:
        return obj.node.name

    @staticmethod
    def resolve_profile(obj) -> str | None:
        return obj.profile.name if obj.profile_id else None

    @staticmethod
    def resolve_joined(obj) -> bool:
        return getattr(obj, "joined", False)


class CatalogOut(Schema):
    name: str
    repo_id: str
    engine: str
    task: str
    served_model_name: str = ""
    dtype: str = ""
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    size_gb: float | None = None
    estimated_memory_gb: float | None = None
    notes: str = ""
    added: bool = False


class CatalogAddIn(Schema):
    profile_name: str | None = None


class WeightsOut(Schema):
    repo_id: str
    size_bytes: int
    size_gb: float
    nb_files: int
    last_used: datetime | None = None
    revisions: list[str]
    refs: list[str] = []
    profiles: list[str]
    orphan: bool
    in_use: list[str]  # live servers on this node using the weights ("name:port (status)")
    deleting: bool
    path: str


class WeightsNodeOut(Schema):
    node: str
    scanned_at: datetime | None = None
    pending: bool  # a fresh scan was asked for and has not come back yet
    path: str
    free_gb: float | None = None
    total_gb: float | None = None
    used_gb: float
    error: str
    warnings: list[str]
    rows: list[WeightsOut]

    @staticmethod
    def resolve_node(obj) -> str:
        return obj["node"].name


class WeightsScanIn(Schema):
    node: str = ""  # empty: every node


class WeightsScanOut(Schema):
    requested: list[str]


class WeightsDeleteIn(Schema):
    repo_id: str
    confirm: str = ""
    node: str = ""  # empty: this host's node


class WeightsDeletionOut(Schema):
    id: int
    node: str
    repo_id: str
    status: str
    freed_bytes: int
    error_code: str
    error: str
    joined: bool = False
    created_at: datetime
    finished_at: datetime | None = None

    @staticmethod
    def resolve_node(obj) -> str:
        return obj.node.name

    @staticmethod
    def resolve_joined(obj) -> bool:
        return getattr(obj, "joined", False)


class LookupOut(Schema):
    id: int
    repo_id: str
    revision: str
    status: str
    error_code: str
    error: str
    node: str | None = None
    commit: str
    looked_up_at: datetime | None = None
    joined: bool = False


class HubTokenIn(Schema):
    token: str


class HubTokenOut(Schema):
    node: str
    token_set: bool
    set_by: str | None = None
    set_at: datetime | None = None
