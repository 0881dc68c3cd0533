from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ModelProfile(models.Model):
    """How to serve one model: source weights plus the engine settings that launch it."""

    class Engine(models.TextChoices):
        VLLM = "vllm", "vLLM"
        TEI = "tei", "TEI"

    class Task(models.TextChoices):
        CHAT = "chat", "Chat"
        CODE = "code", "Code"
        EMBED = "embed", "Embeddings"
        RERANK = "rerank", "Rerank"

    class Source(models.TextChoices):
        HUB = "hub", "Hugging Face repo"
        LOCAL = "local", "Local folder"

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUB)
    repo_id = models.CharField(max_length=200, blank=True, help_text="e.g. Qwen/Qwen2.5-Coder-32B-Instruct")
    revision = models.CharField(max_length=100, blank=True, default="main")
    local_path = models.CharField(max_length=500, blank=True)
    engine = models.CharField(max_length=8, choices=Engine.choices, default=Engine.VLLM)
    served_model_name = models.CharField(max_length=200, blank=True)
    task = models.CharField(max_length=8, choices=Task.choices, default=Task.CHAT)
    dtype = models.CharField(max_length=20, default="bfloat16")
    max_model_len = models.PositiveIntegerField(null=True, blank=True, default=32768)
    gpu_memory_utilization = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.01), MaxValueValidator(1.0)])
    tensor_parallel_size = models.PositiveSmallIntegerField(default=1)
    pipeline_parallel_size = models.PositiveSmallIntegerField(default=1)
    # Placement: how many nodes the model spans (engines/multinode.py); T x P GPUs split evenly over them.
    node_count = models.PositiveSmallIntegerField(default=1)
    # How the ranks of a multi-node placement run: vLLM's own multiprocessing launch, or a Ray cluster the portal
    # starts on the nodes (engines/ray_cluster.py). Ignored on one node.
    distributed_backend = models.CharField(
        max_length=8, default="mp", help_text="Across nodes: mp (vLLM's own launch, the default) or ray (a Ray "
                                              "cluster the portal starts with `ray start` on every node).")
    quantization = models.CharField(max_length=40, blank=True)
    kv_cache_dtype = models.CharField(max_length=20, blank=True, default="auto")
    enable_prefix_caching = models.BooleanField(default=True)
    max_num_seqs = models.PositiveIntegerField(null=True, blank=True)
    enable_sleep_mode = models.BooleanField(
        default=False, help_text="vLLM only: launch with --enable-sleep-mode so operators (and the idle policy) can "
                                 "put its servers to sleep and wake them in seconds instead of a cold start.")
    extra_flags = models.CharField(max_length=1000, blank=True, help_text="Extra engine flags, shell-quoted.")
    extra_env = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    ignore_patterns = models.JSONField(default=list, blank=True,
                                       help_text="Files not to download (globs); empty means the defaults.")
    catalog_name = models.CharField(max_length=100, blank=True, help_text="Catalog entry this profile came from.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(engine__in=["vllm", "tei"]),
                                   name="models_registry_profile_engine_valid"),
            models.CheckConstraint(condition=Q(task__in=["chat", "code", "embed", "rerank"]),
                                   name="models_registry_profile_task_valid"),
            models.CheckConstraint(condition=Q(distributed_backend__in=["mp", "ray"]),
                                   name="models_registry_profile_backend_valid"),
            models.CheckConstraint(condition=Q(gpu_memory_utilization__gt=0) & Q(gpu_memory_utilization__lte=1),
                                   name="models_registry_profile_gpu_util_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def model_name(self) -> str:
        """The name clients send as `model`."""
        return self.served_model_name or self.repo_id or self.name


DEFAULT_IGNORE_PATTERNS = ["original/*", "*.pth", "*.pt", "*.gguf", "*.onnx", "onnx/*", "openvino/*", "*.msgpack",
                           "*.h5", "flax_model*", "tf_model*"]


class Download(models.Model):
    """Weights of one repo fetched onto one node by a Celery task on that node's queue.

    Status: queued -> running -> done | failed | cancelled; running -> queued when its worker died
    (the task is sent again and resumes from the partial files); failed/cancelled/done -> queued
    when someone asks again. See TRANSITIONS. At most one queued/running row per node and repo:
    a second request joins it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING, Status.CANCELLED, Status.FAILED},
        Status.RUNNING: {Status.DONE, Status.FAILED, Status.CANCELLED, Status.QUEUED},
        Status.FAILED: {Status.QUEUED},
        Status.CANCELLED: {Status.QUEUED},
        Status.DONE: {Status.QUEUED},
    }

    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="downloads")
    repo_id = models.CharField(max_length=200)
    revision = models.CharField(max_length=100, default="main")
    commit = models.CharField(max_length=40, blank=True)
    profile = models.ForeignKey(ModelProfile, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="downloads")
    allow_patterns = models.JSONField(default=list, blank=True)
    ignore_patterns = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    current_file = models.CharField(max_length=500, blank=True)
    rate_bps = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]),
                                   name="models_registry_download_status_valid"),
            # The "join the running download" rule, enforced where two clicks race.
            models.UniqueConstraint(fields=["node", "repo_id"], condition=Q(status__in=["queued", "running"]),
                                    name="models_registry_download_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision} on {self.node_id}"

    @property
    def percent(self) -> float:
        return round(100.0 * self.bytes_done / self.bytes_total, 1) if self.bytes_total else 0.0


class NodeHubToken(models.Model):
    """The Hugging Face token a node's worker uses for gated and private repos.

    Stored sealed (Fernet, see sparkportal/lib/sealed.py); never shown again once set.
    """

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="hub_token")
    sealed = models.TextField()
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    set_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"token of {self.node_id}"


class NodeWeights(models.Model):
    """The latest scan of one node's Hugging Face cache, written by a task on that node's worker.

    Each GPU host has its own cache, so only its worker can list it; pages read this row and ask for a
    fresh scan (`requested_at`), which arrives over the websocket.
    """

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="weights")
    path = models.CharField(max_length=500, blank=True)
    repos = models.JSONField(default=list, blank=True)  # [{"repo_id", "size_bytes", "nb_files", ...}]
    warnings = models.JSONField(default=list, blank=True)
    free_bytes = models.BigIntegerField(null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    scanned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"weights on {self.node_id}"

    @property
    def pending(self) -> bool:
        """A scan was asked for and has not come back yet."""
        return self.requested_at is not None and (self.scanned_at is None or self.scanned_at < self.requested_at)


class WeightsDeletion(models.Model):
    """Deleting one repo's weights from one node's cache, done by a task on that node's worker.

    Status: queued -> running -> done | failed; queued -> failed when the task finds the weights in use
    after all. See TRANSITIONS. At most one queued/running row per node and repo: a second request joins it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING, Status.FAILED},
        Status.RUNNING: {Status.DONE, Status.FAILED},
        Status.DONE: set(),
        Status.FAILED: set(),
    }

    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="weights_deletions")
    repo_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    freed_bytes = models.BigIntegerField(default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["queued", "running", "done", "failed"]),
                                   name="models_registry_weightsdeletion_status_valid"),
            models.UniqueConstraint(fields=["node", "repo_id"], condition=Q(status__in=["queued", "running"]),
                                    name="models_registry_weightsdeletion_one_active"),
        ]

    def __str__(self) -> str:
        return f"delete {self.repo_id} on {self.node_id}"


LOOKUP_STATUSES = ("queued", "running", "done", "failed")


class RepoSnapshot(models.Model):
    """What the hub said about a repo revision (file sizes, config.json): memory estimates before download."""

    repo_id = models.CharField(max_length=200)
    revision = models.CharField(max_length=100, default="main")
    commit = models.CharField(max_length=40, blank=True)
    files = models.JSONField(default=list, blank=True)  # [{"path": ..., "size": ...}]
    config = models.JSONField(default=dict, blank=True)
    fetched_at = models.DateTimeField(auto_now=True)
    # The look-up runs as a task on a node's queue (it uses that node's token and network):
    # queued -> running -> done | failed, and again from done/failed. files/config keep the last success.
    lookup_status = models.CharField(max_length=16, choices=[(s, s) for s in LOOKUP_STATUSES], default="done")
    lookup_error_code = models.CharField(max_length=40, blank=True)
    lookup_error = models.TextField(blank=True)
    lookup_node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    lookup_requested_at = models.DateTimeField(null=True, blank=True)
    looked_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repo_id", "revision"], name="models_registry_reposnapshot_unique"),
            models.CheckConstraint(condition=Q(lookup_status__in=LOOKUP_STATUSES),
                                   name="models_registry_reposnapshot_lookup_status_valid"),
        ]

    @property
    def lookup_active(self) -> bool:
        return self.lookup_status in ("queued", "running")
