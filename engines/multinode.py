"""vLLM's own multi-node launch, as data: the flags a rank runs with and the rules of a placement.

Facts (vLLM 0.33.0, `vllm serve --help=all`, engines/vllm_serve_flags.json): with the multiprocessing
executor (`mp`, vLLM's default) every host runs the same `vllm serve MODEL --tensor-parallel-size T
--pipeline-parallel-size P` plus

    --nnodes N (-n)         number of hosts (default 1)
    --node-rank R (-r)      this host's rank, 0..N-1 (default 0)
    --master-addr ADDR      rank 0's address, where the others rendezvous (default 127.0.0.1)
    --master-port PORT      rank 0's rendezvous port (default 29501)
    --headless              no API server on this host: every rank but 0

Rank 0 serves HTTP; the world is T x P GPUs, T x P / N on each host. `--distributed-executor-backend ray`
instead needs a Ray cluster across the hosts (`ray start --head` / `ray start --address`, which the portal runs:
engines/ray_cluster.py), and then only rank 0 runs `vllm serve`. The portal sets all of these itself
(engines/flags.py OWNED): a profile states its placement (and its backend, mp or ray), never the flags.
"""
from __future__ import annotations

from dataclasses import dataclass

# The flags above, each with the vLLM default a single-node server runs with.
FLAGS = {
    "--nnodes": "1", "--node-rank": "0", "--master-addr": "127.0.0.1", "--master-port": "29501",
    "--headless": None, "--distributed-executor-backend": None,
}
ALIASES = {"-n": "--nnodes", "-r": "--node-rank"}
BACKENDS = ("mp", "ray")
MAX_NODES = 16


@dataclass(frozen=True)
class Placement:
    """How many hosts a model spans and how its GPUs split: T x P GPUs in all, T x P / nodes on each."""

    nodes: int = 1
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    backend: str = "mp"

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def gpus_per_node(self) -> int:
        return self.world_size // max(1, self.nodes)

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    def describe(self) -> str:
        on_ray = " on Ray" if self.backend == "ray" and self.multi_node else ""
        return (f"{self.nodes} node(s) x {self.gpus_per_node} GPU(s) (tensor parallel {self.tensor_parallel_size}, "
                f"pipeline parallel {self.pipeline_parallel_size}){on_ray}")


@dataclass(frozen=True)
class Rank:
    """One host's part of a multi-node launch."""

    rank: int
    master_addr: str
    master_port: int


def placement_problems(placement: Placement) -> list[str]:
    """What is wrong with a placement, each saying what to write instead (empty: it is fine)."""
    problems = []
    if not 1 <= placement.nodes <= MAX_NODES:
        problems.append(f"A placement spans 1 to {MAX_NODES} nodes, not {placement.nodes}.")
        return problems
    if placement.tensor_parallel_size < 1 or placement.pipeline_parallel_size < 1:
        problems.append("Tensor and pipeline parallel sizes are at least 1.")
        return problems
    if placement.world_size % placement.nodes:
        problems.append(f"tensor_parallel_size x pipeline_parallel_size = {placement.world_size} GPUs do not split "
                        f"evenly over {placement.nodes} nodes: vLLM puts the same number of GPUs on every node. "
                        f"Use a multiple of {placement.nodes} GPUs (e.g. pipeline_parallel_size={placement.nodes}).")
    if placement.backend not in BACKENDS:
        problems.append(f"The distributed executor backend is one of {', '.join(BACKENDS)}, not {placement.backend}.")
    return problems


def rank_flags(placement: Placement, rank: Rank) -> list[str]:
    """The flags one rank adds to `vllm serve` (nothing for a single-node placement)."""
    if not placement.multi_node:
        return []
    if not 0 <= rank.rank < placement.nodes:
        raise ValueError(f"rank {rank.rank} is outside 0..{placement.nodes - 1}")
    flags = ["--distributed-executor-backend", placement.backend]
    if placement.backend == "ray":
        return flags  # Ray places the workers itself; only rank 0 runs `vllm serve`
    flags += ["--nnodes", str(placement.nodes), "--node-rank", str(rank.rank),
              "--master-addr", rank.master_addr, "--master-port", str(rank.master_port)]
    if rank.rank > 0:
        flags.append("--headless")
    return flags


def is_headless(argv: list[str]) -> bool:
    return "--headless" in argv
