"""The command line a server launches (an argv list, never a shell string), from plain values.

The registry turns a profile into a `ServeSpec`; the supervisor launches `serve_argv(spec, ...)` with the
server's own port and memory share; the profile page shows the same argv as a command line.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from engines import flags, multinode


@dataclass(frozen=True)
class ServeSpec:
    engine: str  # "vllm" or "tei"
    model: str  # a repo id (read from the node's cache) or a local folder
    served_model_name: str
    revision: str = ""
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    quantization: str = ""
    kv_cache_dtype: str = "auto"
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    enable_sleep_mode: bool = False
    node_count: int = 1
    distributed_backend: str = "mp"
    extra_flags: str = ""
    extra_env: dict = field(default_factory=dict)


def placement_of(spec: ServeSpec) -> multinode.Placement:
    return multinode.Placement(nodes=spec.node_count, tensor_parallel_size=spec.tensor_parallel_size,
                               pipeline_parallel_size=spec.pipeline_parallel_size, backend=spec.distributed_backend)


def serve_argv(spec: ServeSpec, *, executable: str = "", host: str = "127.0.0.1", port: int = 8000,
               gpu_memory_utilization: float | None = None, hub_cache: str = "",
               rank: multinode.Rank | None = None) -> list[str]:
    """`<vllm> serve <model> ...` or `<router> --model-id <model> ...`, then the profile's extra flags.

    `gpu_memory_utilization` overrides the profile's share (a server started with a smaller one). `rank` is
    this host's part of a multi-node placement (the profile's node_count above 1): vLLM's own launch flags.
    """
    extra = flags.split(spec.extra_flags).argv
    if spec.engine == "tei":
        return _tei_argv(spec, executable=executable, host=host, port=port, hub_cache=hub_cache) + extra
    util = spec.gpu_memory_utilization if gpu_memory_utilization is None else gpu_memory_utilization
    argv = [executable or "vllm", "serve", spec.model]
    if spec.revision not in ("", "main"):
        argv += ["--revision", spec.revision]
    argv += ["--served-model-name", spec.served_model_name, "--host", host, "--port", str(port),
             "--dtype", spec.dtype]
    if spec.max_model_len:
        argv += ["--max-model-len", str(spec.max_model_len)]
    argv += ["--gpu-memory-utilization", f"{util:g}", "--tensor-parallel-size", str(spec.tensor_parallel_size)]
    placement = placement_of(spec)
    if placement.multi_node:
        if rank is None:
            raise ValueError(f"{spec.served_model_name} spans {spec.node_count} nodes: each rank is launched with "
                             "its rank, master address and port")
        if spec.pipeline_parallel_size > 1:
            argv += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size)]
        argv += multinode.rank_flags(placement, rank)
    elif spec.pipeline_parallel_size > 1:
        argv += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size),
                 "--distributed-executor-backend", "ray"]
    if spec.quantization:
        argv += ["--quantization", spec.quantization]
    if spec.kv_cache_dtype and spec.kv_cache_dtype != "auto":
        argv += ["--kv-cache-dtype", spec.kv_cache_dtype]
    argv.append("--enable-prefix-caching" if spec.enable_prefix_caching else "--disable-prefix-caching")
    # Answers then say how many prompt tokens came from the prefix cache; the ledger prices them apart.
    argv.append("--enable-prompt-tokens-details")
    if spec.max_num_seqs:
        argv += ["--max-num-seqs", str(spec.max_num_seqs)]
    if spec.enable_sleep_mode:
        argv.append("--enable-sleep-mode")
    return argv + extra


def _tei_argv(spec: ServeSpec, *, executable: str, host: str, port: int, hub_cache: str) -> list[str]:
    argv = [executable or "text-embeddings-router", "--model-id", spec.model]
    if spec.revision not in ("", "main"):
        argv += ["--revision", spec.revision]
    argv += ["--served-model-name", spec.served_model_name, "--hostname", host, "--port", str(port)]
    if spec.dtype in ("float16", "float32"):
        argv += ["--dtype", spec.dtype]
    if hub_cache:
        argv += ["--huggingface-hub-cache", hub_cache]
    return argv


def command_line(argv: list[str], env: dict | None = None) -> str:
    """An argv (and the extra environment) quoted so it can be pasted into a terminal."""
    prefix = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted((env or {}).items()))
    return f"{prefix} {shlex.join(argv)}".strip()
