"""A GPU host (Node) with its own Celery queue, and the host/GPU samples of its heartbeats."""
from django.db import models


class Node(models.Model):
    """A host with GPUs and its own Celery worker listening on `node.<name>`."""

    name = models.SlugField(max_length=64, unique=True)
    queue = models.CharField(max_length=80, unique=True)
    # Engines live in their own environments; these point the supervisor at them.
    vllm_executable = models.CharField(max_length=500, blank=True, default="vllm")
    tei_executable = models.CharField(max_length=500, blank=True, default="text-embeddings-router")
    ld_library_path_prefix = models.CharField(max_length=1000, blank=True)
    extra_env = models.JSONField(default=dict, blank=True)
    memory_budget = models.FloatField(default=0.85, help_text="Max sum of gpu_memory_utilization on this node.")
    stop_timeout_s = models.PositiveIntegerField(default=30)
    # Multi-node servers (engines/environment.network_env): set by an admin per host.
    network_interface = models.CharField(max_length=64, blank=True,
                                         help_text="Interface NCCL and Gloo use between nodes, e.g. enp1s0f0np0.")
    host_ip = models.GenericIPAddressField(null=True, blank=True,
                                           help_text="This host's address on that interface (VLLM_HOST_IP); a "
                                                     "leader's is its master address and where the gateway reaches it.")
    nccl_nvls_enable = models.BooleanField(default=False, help_text="NCCL_NVLS_ENABLE=1 (off: NCCL hangs on "
                                                                    "DGX Spark with it).")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    host_facts = models.JSONField(default=dict, blank=True)
    gpu_facts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        db_table = "servers_node"  # created by the servers app before nodes had its own

    def __str__(self) -> str:
        return self.name


class NodeSample(models.Model):
    """Host and GPU figures of one heartbeat; pruned after PORTAL_SAMPLE_RETENTION_HOURS."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(db_index=True)
    host = models.JSONField(default=dict)
    gpus = models.JSONField(default=list)

    class Meta:
        ordering = ["-at"]
        db_table = "servers_nodesample"
        indexes = [models.Index(fields=["node", "-at"], name="servers_nodesample_node_at")]

