from django.db import models

from nodes.models import Node


class ServerGroup(models.Model):
    """One model across several nodes (vLLM's multi-node launch): one Server row per rank, rank 0 the leader.

    The leader's row is what the gateway routes to; followers run headless. The group's status follows its
    ranks (servers/groups/): ready once the leader answers, failed as soon as any rank exits (the others are
    stopped), and the restart policy restarts the whole group, never one rank.
    """

    class Status(models.TextChoices):
        STARTING = "starting"
        READY = "ready"
        STOPPING = "stopping"
        STOPPED = "stopped"
        FAILED = "failed"

    LIVE = (Status.STARTING, Status.READY, Status.STOPPING)

    profile = models.ForeignKey("models_registry.ModelProfile", on_delete=models.PROTECT, related_name="groups")
    served_model_name = models.CharField(max_length=200)
    node_count = models.PositiveSmallIntegerField()
    master_addr = models.CharField(max_length=200)
    master_port = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    status_reason = models.TextField(blank=True)
    failure_code = models.CharField(max_length=32, blank=True)
    restart_policy = models.CharField(max_length=16, default="never",
                                      choices=[("never", "never"), ("on-failure", "on failure")])
    max_restarts = models.PositiveIntegerField(default=3)
    restart_attempts = models.PositiveIntegerField(default=0)
    next_restart_at = models.DateTimeField(null=True, blank=True)
    # What each node reported before its rank was launched: {rank: {node, interface, reaches, nccl, ...}}.
    preflight = models.JSONField(default=dict, blank=True)
    # As Server.load_on_demand / unload_idle_minutes, for the whole group: the gateway starts every rank for a
    # request to the leader, and the idle stop stops every rank (servers/groups/on_demand.py).
    load_on_demand = models.BooleanField(default=False)
    unload_idle_minutes = models.PositiveIntegerField(null=True, blank=True)
    started_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["starting", "ready", "stopping", "stopped",
                                                                  "failed"]),
                                   name="servers_servergroup_status_valid"),
            # The leader's rendezvous port is the portal's to hand out: one live group per address and port.
            models.UniqueConstraint(fields=["master_addr", "master_port"],
                                    condition=models.Q(status__in=["starting", "ready", "stopping"]),
                                    name="servers_servergroup_live_master_unique"),
            models.CheckConstraint(condition=models.Q(unload_idle_minutes__isnull=True)
                                   | models.Q(unload_idle_minutes__gte=1),
                                   name="servers_servergroup_unload_idle_minutes_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.served_model_name} across {self.node_count} nodes (group #{self.pk})"


class Server(models.Model):
    """One engine process (vLLM or TEI) serving one profile on one node and port.

    Status: stopped -> queued -> starting -> ready -> stopping -> stopped;
    failed is reachable from queued/starting/ready; external marks an engine found running
    that the portal did not start (adoptable, stoppable). A server whose profile enables sleep mode
    goes ready -> sleeping (at sleep_level 1 or 2; back to ready if the engine does not confirm) ->
    waking -> ready (or back to sleeping if the engine refuses). See TRANSITIONS.
    """

    class Status(models.TextChoices):
        STOPPED = "stopped"
        QUEUED = "queued"
        STARTING = "starting"
        READY = "ready"
        STOPPING = "stopping"
        FAILED = "failed"
        EXTERNAL = "external"
        SLEEPING = "sleeping"
        WAKING = "waking"

    TRANSITIONS = {
        Status.STOPPED: {Status.QUEUED, Status.STARTING},
        Status.FAILED: {Status.QUEUED, Status.STARTING, Status.STOPPED},
        Status.QUEUED: {Status.STARTING, Status.STOPPED, Status.FAILED},
        Status.STARTING: {Status.READY, Status.STOPPING, Status.FAILED},
        Status.READY: {Status.STOPPING, Status.FAILED, Status.SLEEPING},
        Status.SLEEPING: {Status.WAKING, Status.READY, Status.STOPPING, Status.FAILED},
        Status.WAKING: {Status.READY, Status.SLEEPING, Status.STOPPING, Status.FAILED},
        Status.STOPPING: {Status.STOPPED, Status.FAILED},
        Status.EXTERNAL: {Status.STOPPING, Status.READY, Status.STOPPED},
    }
    LIVE = (Status.QUEUED, Status.STARTING, Status.READY, Status.STOPPING, Status.EXTERNAL, Status.SLEEPING,
            Status.WAKING)
    # An engine process is up and answering (or being put to sleep or woken): what reconcile and the scrape watch.
    RUNNING = (Status.READY, Status.SLEEPING, Status.WAKING)

    class Engine(models.TextChoices):
        VLLM = "vllm", "vLLM"
        TEI = "tei", "TEI"

    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="servers")
    profile = models.ForeignKey("models_registry.ModelProfile", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="servers")
    served_model_name = models.CharField(max_length=200, db_index=True)
    host = models.CharField(max_length=200, default="127.0.0.1", help_text="Address the gateway connects to.")
    port = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STOPPED)
    status_reason = models.TextField(blank=True)
    # Short machine-readable cause of the last failure: oom, kv_cache, port_in_use, unknown_flag,
    # missing_library, health_timeout, exited, watch_lost.
    failure_code = models.CharField(max_length=32, blank=True)
    engine = models.CharField(max_length=8, choices=Engine.choices, default=Engine.VLLM)
    pid = models.PositiveIntegerField(null=True, blank=True)
    # The pid's start time (seconds since the epoch): a reused pid never passes for our process.
    pid_started_at = models.FloatField(null=True, blank=True)
    cuda_visible_devices = models.CharField(max_length=100, blank=True)
    argv = models.JSONField(default=list, blank=True)
    engine_version = models.CharField(max_length=50, blank=True)
    gpu_memory_utilization = models.FloatField(default=0.0)
    measured_memory_gb = models.FloatField(null=True, blank=True)
    load_on_demand = models.BooleanField(default=False)
    unload_idle_minutes = models.PositiveIntegerField(null=True, blank=True)
    restart_policy = models.CharField(max_length=16, default="never",
                                      choices=[("never", "never"), ("on-failure", "on failure")])
    max_restarts = models.PositiveIntegerField(default=3)
    restart_attempts = models.PositiveIntegerField(default=0)
    next_restart_at = models.DateTimeField(null=True, blank=True)
    last_log_lines = models.TextField(blank=True)
    started_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    # A start's lease: the worker that launched the engine renews it while it watches; once it is older than
    # PORTAL_SERVER_START_LEASE_S that worker is gone, and the reconcile adopts or fails the start.
    lease_renewed_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Cleared from the Servers list by an operator; the row, its events and the audit stay as history.
    cleared_at = models.DateTimeField(null=True, blank=True)
    last_request_at = models.DateTimeField(null=True, blank=True)
    # Sleep mode: the level while sleeping/waking (None when awake) and when the engine confirmed it asleep.
    sleep_level = models.PositiveSmallIntegerField(null=True, blank=True)
    slept_at = models.DateTimeField(null=True, blank=True)
    # Idle policy before the unload: sleep at idle_sleep_level after this many idle minutes (None: never).
    sleep_idle_minutes = models.PositiveIntegerField(null=True, blank=True)
    idle_sleep_level = models.PositiveSmallIntegerField(default=1)
    # One rank of a multi-node group (rank 0 serves HTTP; the others run headless); None: a single-node server.
    group = models.ForeignKey(ServerGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="ranks")
    rank = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["node__name", "port"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["stopped", "queued", "starting", "ready",
                                                                  "stopping", "failed", "external", "sleeping",
                                                                  "waking"]),
                                   name="servers_server_status_valid"),
            models.CheckConstraint(condition=models.Q(sleep_level__isnull=True) | models.Q(sleep_level__in=[1, 2]),
                                   name="servers_server_sleep_level_valid"),
            models.CheckConstraint(condition=models.Q(idle_sleep_level__in=[1, 2]),
                                   name="servers_server_idle_sleep_level_valid"),
            models.CheckConstraint(condition=models.Q(engine__in=["vllm", "tei"]), name="servers_server_engine_valid"),
            # One live server per node and port; stopped/failed rows keep their history.
            models.UniqueConstraint(fields=["node", "port"],
                                    condition=models.Q(status__in=["queued", "starting", "ready", "stopping",
                                                                   "external", "sleeping", "waking"]),
                                    name="servers_server_live_port_unique"),
        ]
        indexes = [
            # The gateway's routing query: ready servers by served model name.
            models.Index(fields=["served_model_name", "status"], name="servers_server_route"),
        ]

    def __str__(self) -> str:
        return f"{self.served_model_name} on {self.node}:{self.port}"

    @property
    def is_follower(self) -> bool:
        return self.group_id is not None and self.rank > 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class ServerEvent(models.Model):
    """One row per status transition: the server's history and its statistics source."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="events")
    old = models.CharField(max_length=16)
    new = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]


class ServerMetricSample(models.Model):
    """The engine figures of one scrape interval of one server (servers.metrics.derive.derive).

    Raw rows (resolution_s=0) are averaged into one row per minute (resolution_s=60) once they
    are older than PORTAL_METRICS_DOWNSAMPLE_AFTER_MINUTES, and every row is deleted after
    PORTAL_METRICS_RETENTION_DAYS. A figure is null when its interval had nothing to measure
    (no finished request, first scrape after a start, a counter reset).
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="metric_samples")
    at = models.DateTimeField()
    interval_s = models.FloatField(null=True, blank=True)
    resolution_s = models.PositiveIntegerField(default=0)
    generation_tps = models.FloatField(null=True, blank=True)
    prompt_tps = models.FloatField(null=True, blank=True)
    requests_per_s = models.FloatField(null=True, blank=True)
    prefix_cache_hit_rate = models.FloatField(null=True, blank=True)
    running = models.FloatField(null=True, blank=True)
    waiting = models.FloatField(null=True, blank=True)
    kv_cache_usage = models.FloatField(null=True, blank=True, help_text="Fraction 0-1, as vLLM reports it.")
    ttft_mean_s = models.FloatField(null=True, blank=True)
    ttft_p50_s = models.FloatField(null=True, blank=True)
    ttft_p95_s = models.FloatField(null=True, blank=True)
    tpot_mean_s = models.FloatField(null=True, blank=True)
    itl_mean_s = models.FloatField(null=True, blank=True)
    itl_p50_s = models.FloatField(null=True, blank=True)
    itl_p95_s = models.FloatField(null=True, blank=True)
    e2e_mean_s = models.FloatField(null=True, blank=True)
    e2e_p50_s = models.FloatField(null=True, blank=True)
    e2e_p95_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(resolution_s__in=[0, 60]),
                                   name="servers_servermetricsample_resolution_valid"),
        ]
        indexes = [
            # Charts and the exporter: the latest samples of one server.
            models.Index(fields=["server", "-at"], name="servers_metricsample_server_at"),
            # Downsampling: raw rows older than the cutoff.
            models.Index(fields=["resolution_s", "at"], name="servers_metricsample_res_at"),
        ]

    def __str__(self) -> str:
        return f"{self.server_id} @ {self.at:%Y-%m-%d %H:%M:%S}"
