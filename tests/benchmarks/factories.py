import factory
from django.utils import timezone

from benchmarks.models import BenchmarkRun, BenchmarkSummary
from models_registry.models import ModelProfile
from nodes.models import Node
from servers.models import Server


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelProfile
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"profile-{n}")
    repo_id = factory.Sequence(lambda n: f"org/model-{n}")
    dtype = "bfloat16"
    max_model_len = 4096
    gpu_memory_utilization = 0.2


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node
        django_get_or_create = ("name",)

    name = "bench-node"
    queue = factory.LazyAttribute(lambda n: f"node.{n.name}")


class ServerFactory(factory.django.DjangoModelFactory):
    """A server record as the supervisor leaves it (no process behind it)."""

    class Meta:
        model = Server

    node = factory.SubFactory(NodeFactory)
    profile = factory.SubFactory(ProfileFactory)
    served_model_name = factory.LazyAttribute(lambda s: s.profile.name)
    port = factory.Sequence(lambda n: 19000 + n)
    status = "ready"


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BenchmarkRun

    plan_name = "weekly"
    status = "succeeded"
    config = factory.LazyFunction(lambda: {"warmups": 5, "repeats": 3, "tool": "vllm", "statistic": "median",
                                           "workload": {"name": "fixed-512-256", "input_len": 512, "output_len": 256}})
    finished_at = factory.LazyFunction(timezone.now)


class SummaryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BenchmarkSummary

    run = factory.SubFactory(RunFactory)
    profile = factory.SubFactory(ProfileFactory)
    profile_name = factory.LazyAttribute(lambda s: s.profile.name)
    status = "done"
    node_name = "bench-node"
    engine_version = "0.33.0"
    facts = factory.LazyAttribute(lambda s: {"dtype": s.profile.dtype, "max_model_len": s.profile.max_model_len,
                                             "quantization": s.profile.quantization, "warmups": 5})
    repeats_ok = 3
    output_throughput = 270.0
    total_token_throughput = 810.0
    request_throughput = 1.05
    median_ttft_ms = 8100.0
    p99_ttft_ms = 17000.0
    median_tpot_ms = 330.0
    median_itl_ms = 320.0
    median_e2el_ms = 90000.0
    spread = factory.LazyFunction(lambda: {"output_throughput": 1.0, "median_ttft_ms": 1.2, "median_tpot_ms": 0.8})
    spread_pct = 1.0
    finished_at = factory.LazyFunction(timezone.now)
