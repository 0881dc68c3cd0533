from datetime import datetime

from ninja import Field, ModelSchema, Schema

from benchmarks.models import BenchmarkPlan, BenchmarkResult, BenchmarkRun, Workload


class WorkloadIn(Schema):
    name: str
    dataset_name: str = "random"
    input_len: int = 512
    output_len: int = 256
    num_prompts: int = 100
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    seed: int = 0
    temperature: float | None = 0.0
    backend: str = "openai"
    extra_args: str = ""


class WorkloadOut(ModelSchema):
    class Meta:
        model = Workload
        fields = ["id", "name", "dataset_name", "input_len", "output_len", "num_prompts", "request_rate",
                  "burstiness", "max_concurrency", "seed", "temperature", "backend", "extra_args", "created_at"]


class PlanIn(Schema):
    name: str
    workload_id: int | None = Field(None, description="Empty: the fixed 512/256 workload.")
    profile_ids: list[int]
    description: str = ""
    warmups: int = 5
    repeats: int = 3
    statistic: str = "median"
    tool: str = "vllm"
    keep_results: int = 20
    only_if_idle: bool = True
    idle_minutes: int = 30
    node: str = Field("", description="Node whose GPUs the servers start on; empty: this host's node.")


class PlanOut(ModelSchema):
    profiles: list[str]
    schedule: str | None
    node: str | None

    class Meta:
        model = BenchmarkPlan
        fields = ["id", "name", "description", "workload", "warmups", "repeats", "statistic", "tool", "keep_results",
                  "only_if_idle", "idle_minutes", "schedule_jitter_minutes", "created_at"]

    @staticmethod
    def resolve_node(obj: BenchmarkPlan) -> str | None:
        return obj.node.name if obj.node_id else None

    @staticmethod
    def resolve_profiles(obj: BenchmarkPlan) -> list[str]:
        return [e.profile.name for e in obj.entries.all()]

    @staticmethod
    def resolve_schedule(obj: BenchmarkPlan) -> str | None:
        if not obj.schedule_id or not obj.schedule.crontab_id:
            return None
        c = obj.schedule.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


class ScheduleIn(Schema):
    minute: str = "0"
    hour: str = "4"
    day_of_week: str = "sun"
    day_of_month: str = "*"
    month_of_year: str = "*"
    jitter_minutes: int = 30
    only_if_idle: bool = True


class ResultOut(ModelSchema):
    class Meta:
        model = BenchmarkResult
        fields = ["id", "repeat", "warmups", "status", "message", "created_at", "finished_at"]


class SummaryOut(Schema):
    id: int
    run_id: int
    profile: str
    status: str
    message: str
    node: str
    engine_version: str
    dtype: str | None = None
    max_model_len: int | None = None
    quantization: str | None = None
    repeats_ok: int
    repeats_failed: int
    failed_requests: int
    output_throughput: float | None
    total_token_throughput: float | None
    request_throughput: float | None
    median_ttft_ms: float | None
    p99_ttft_ms: float | None
    median_tpot_ms: float | None
    median_itl_ms: float | None
    median_e2el_ms: float | None
    spread_pct: float | None
    spread: dict


class RunOut(ModelSchema):
    summaries: list[SummaryOut]

    class Meta:
        model = BenchmarkRun
        fields = ["id", "plan", "plan_name", "status", "trigger", "config", "progress", "message", "created_at",
                  "started_at", "finished_at", "cancel_requested_at", "runner", "heartbeat_at"]

    @staticmethod
    def resolve_summaries(obj: BenchmarkRun) -> list[dict]:
        from benchmarks.selectors import summary_as_dict

        return [summary_as_dict(s) for s in obj.summaries.all()]


class CompareOut(Schema):
    rows: list[SummaryOut]
    warnings: list[str]


class ErrorOut(Schema):
    detail: str
    code: str


class HistoryPoint(Schema):
    run_id: int
    finished_at: datetime | None
    output_throughput: float | None
    median_ttft_ms: float | None
    median_tpot_ms: float | None
