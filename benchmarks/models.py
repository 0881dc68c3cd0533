from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# The headline figures of one repeat, as keys of the tool's result file, with a label and unit.
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("output_throughput", "output tok/s", "tok/s"),
    ("total_token_throughput", "total tok/s", "tok/s"),
    ("request_throughput", "requests/s", "req/s"),
    ("median_ttft_ms", "TTFT median", "ms"),
    ("p99_ttft_ms", "TTFT p99", "ms"),
    ("median_tpot_ms", "TPOT median", "ms"),
    ("median_itl_ms", "ITL median", "ms"),
    ("median_e2el_ms", "E2E latency median", "ms"),
)
SUMMARY_KEYS = tuple(key for key, _label, _unit in SUMMARY_METRICS)
ENDPOINTS = {"openai": "/v1/completions", "openai-chat": "/v1/chat/completions",
             "openai-embeddings": "/v1/embeddings"}


class Workload(models.Model):
    """What traffic a benchmark sends. Defaults are the field notes' fixed workload."""

    class Backend(models.TextChoices):
        OPENAI = "openai", "completions (/v1/completions)"
        OPENAI_CHAT = "openai-chat", "chat (/v1/chat/completions)"
        OPENAI_EMBEDDINGS = "openai-embeddings", "embeddings (/v1/embeddings)"

    name = models.SlugField(max_length=100, unique=True)
    dataset_name = models.CharField(max_length=40, default="random",
                                    help_text="`random` keeps token counts equal across tokenizers.")
    input_len = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1)])
    output_len = models.PositiveIntegerField(default=256, validators=[MinValueValidator(1)])
    num_prompts = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)])
    request_rate = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)],
                                     help_text="Requests per second; empty means inf (all sent at once).")
    burstiness = models.FloatField(default=1.0, validators=[MinValueValidator(0.001)])
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    seed = models.IntegerField(default=0)
    temperature = models.FloatField(null=True, blank=True, default=0.0,
                                    help_text="0 = greedy. Empty leaves it to the server's default.")
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.OPENAI)
    extra_args = models.CharField(max_length=1000, blank=True,
                                  help_text="More `vllm bench serve` flags, shell-quoted.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(backend__in=["openai", "openai-chat", "openai-embeddings"]),
                                   name="benchmarks_workload_backend_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def endpoint(self) -> str:
        return ENDPOINTS[self.backend]

    @property
    def rate_display(self) -> str:
        return "inf" if self.request_rate is None else f"{self.request_rate:g}"

    def as_config(self) -> dict:
        """The snapshot a run keeps, so later edits of the workload don't rewrite history."""
        return {"name": self.name, "dataset_name": self.dataset_name, "input_len": self.input_len,
                "output_len": self.output_len, "num_prompts": self.num_prompts,
                "request_rate": self.request_rate, "burstiness": self.burstiness,
                "max_concurrency": self.max_concurrency, "seed": self.seed, "temperature": self.temperature,
                "backend": self.backend, "endpoint": self.endpoint, "extra_args": self.extra_args}


class BenchmarkPlan(models.Model):
    """A list of profiles benchmarked one after another on one workload."""

    class Tool(models.TextChoices):
        VLLM = "vllm", "vllm bench serve (on the node)"
        BUILTIN = "builtin", "built-in load generator"

    class Statistic(models.TextChoices):
        MEDIAN = "median", "median"
        MEAN = "mean", "mean"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    workload = models.ForeignKey(Workload, on_delete=models.PROTECT, related_name="plans")
    warmups = models.PositiveSmallIntegerField(default=5, validators=[MaxValueValidator(1000)])
    repeats = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(50)])
    statistic = models.CharField(max_length=8, choices=Statistic.choices, default=Statistic.MEDIAN)
    tool = models.CharField(max_length=10, choices=Tool.choices, default=Tool.VLLM)
    keep_results = models.PositiveSmallIntegerField(default=20, validators=[MinValueValidator(1)],
                                                    help_text="Raw result files kept per profile.")
    only_if_idle = models.BooleanField(default=True, help_text="Scheduled runs skip when the box is busy.")
    idle_minutes = models.PositiveIntegerField(default=30)
    schedule = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    schedule_jitter_minutes = models.PositiveIntegerField(default=30)
    # PROTECT: a plan silently falling back to another host would give numbers of another machine.
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="Where the plan's servers start; empty: this host's node.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(tool__in=["vllm", "builtin"]), name="benchmarks_plan_tool_valid"),
            models.CheckConstraint(condition=Q(statistic__in=["median", "mean"]),
                                   name="benchmarks_plan_statistic_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class PlanEntry(models.Model):
    plan = models.ForeignKey(BenchmarkPlan, on_delete=models.CASCADE, related_name="entries")
    profile = models.ForeignKey("models_registry.ModelProfile", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["plan", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "profile"], name="benchmarks_planentry_profile_once"),
        ]


class BenchmarkRun(models.Model):
    """One execution of a plan.

    Status: queued -> running -> succeeded | failed | cancelled; queued -> cancelled;
    queued -> skipped (a scheduled run found the box busy). See TRANSITIONS.
    While running, `runner` names the worker and `heartbeat_at` is renewed every few seconds; a run
    whose heartbeat is older than the lease lost its worker and is failed by the reconcile.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        SKIPPED = "skipped"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"

    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING, Status.CANCELLED, Status.SKIPPED, Status.FAILED},
        Status.RUNNING: {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED},
    }
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.SKIPPED)

    plan = models.ForeignKey(BenchmarkPlan, null=True, on_delete=models.SET_NULL, related_name="runs")
    plan_name = models.CharField(max_length=100)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    config = models.JSONField(default=dict, help_text="Workload, warm-ups, repeats and tool at start.")
    progress = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    runner = models.CharField(max_length=200, blank=True, help_text="The worker running it (name and pid).")
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Renewed by the runner while it lives; the run's lease.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled", "skipped"]),
                name="benchmarks_run_status_valid"),
        ]
        indexes = [
            # The "is a benchmark already running?" check of the idle guard and of run start.
            models.Index(fields=["status"], name="benchmarks_run_status"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.plan_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class BenchmarkSummary(models.Model):
    """One profile within one run: the server it used and the statistic over its repeats."""

    class Status(models.TextChoices):
        PENDING = "pending"
        STARTING = "starting"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="summaries")
    profile = models.ForeignKey("models_registry.ModelProfile", null=True, on_delete=models.SET_NULL,
                                related_name="+")
    profile_name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(blank=True)
    server = models.ForeignKey("servers.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_server = models.BooleanField(default=False, help_text="The run started this server and stops it.")
    node_name = models.CharField(max_length=64, blank=True)
    engine_version = models.CharField(max_length=50, blank=True)
    facts = models.JSONField(default=dict, blank=True, help_text="dtype, max_model_len, quantization … at run time.")
    repeats_ok = models.PositiveSmallIntegerField(default=0)
    repeats_failed = models.PositiveSmallIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    completed_requests = models.PositiveIntegerField(default=0)
    output_throughput = models.FloatField(null=True, blank=True)
    total_token_throughput = models.FloatField(null=True, blank=True)
    request_throughput = models.FloatField(null=True, blank=True)
    median_ttft_ms = models.FloatField(null=True, blank=True)
    p99_ttft_ms = models.FloatField(null=True, blank=True)
    median_tpot_ms = models.FloatField(null=True, blank=True)
    median_itl_ms = models.FloatField(null=True, blank=True)
    median_e2el_ms = models.FloatField(null=True, blank=True)
    spread = models.JSONField(default=dict, blank=True, help_text="Per metric: (max-min)/median of repeats, %.")
    spread_pct = models.FloatField(null=True, blank=True, help_text="Spread of output tok/s, %.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "benchmark summaries"
        ordering = ["run", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "starting", "running", "done", "failed", "cancelled"]),
                name="benchmarks_summary_status_valid"),
        ]
        indexes = [
            # History per profile (charts) reads the finished summaries of one profile by time.
            models.Index(fields=["profile", "finished_at"], name="benchmarks_summary_history"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_name} in run {self.run_id}"

    def metric(self, key: str) -> float | None:
        return getattr(self, key)


class BenchmarkResult(models.Model):
    """One repeat: the raw result file of the tool, kept for the last N repeats per profile."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"
        CANCELLED = "cancelled"

    summary = models.ForeignKey(BenchmarkSummary, on_delete=models.CASCADE, related_name="results")
    profile = models.ForeignKey("models_registry.ModelProfile", null=True, on_delete=models.SET_NULL,
                                related_name="+")
    repeat = models.PositiveSmallIntegerField()
    warmups = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(blank=True)
    argv = models.JSONField(default=list, blank=True)
    raw = models.JSONField(null=True, blank=True)
    stdout_tail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["summary", "repeat"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["pending", "running", "ok", "failed", "cancelled"]),
                                   name="benchmarks_result_status_valid"),
            models.UniqueConstraint(fields=["summary", "repeat"], name="benchmarks_result_repeat_once"),
        ]
        indexes = [
            # Retention keeps the newest N per profile.
            models.Index(fields=["profile", "-created_at"], name="benchmarks_result_retention"),
        ]

    def value(self, key: str) -> float | None:
        if not isinstance(self.raw, dict):
            return None
        value = self.raw.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
