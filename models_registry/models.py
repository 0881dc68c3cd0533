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
    quantization = models.CharField(max_length=40, blank=True)
    kv_cache_dtype = models.CharField(max_length=20, blank=True, default="auto")
    enable_prefix_caching = models.BooleanField(default=True)
    max_num_seqs = models.PositiveIntegerField(null=True, blank=True)
    extra_flags = models.CharField(max_length=1000, blank=True, help_text="Extra engine flags, shell-quoted.")
    extra_env = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(engine__in=["vllm", "tei"]), name="models_registry_profile_engine_valid"),
            models.CheckConstraint(condition=Q(task__in=["chat", "code", "embed", "rerank"]),
                                   name="models_registry_profile_task_valid"),
            models.CheckConstraint(condition=Q(gpu_memory_utilization__gt=0) & Q(gpu_memory_utilization__lte=1),
                                   name="models_registry_profile_gpu_util_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def model_name(self) -> str:
        """The name clients send as `model`."""
        return self.served_model_name or self.repo_id or self.name
