"""vLLM's Ray backend across nodes, as data: the `ray start` command lines and the environment of every Ray process.

Facts, read in the sources: Ray's `python/ray/scripts/scripts.py` (`ray start`, `ray stop`) and
`python/ray/_private/services.py`; vLLM's `vllm/v1/executor/ray_utils.py`, `ray_executor.py` and `ray_env_utils.py`
(main as read); the node's vLLM 0.33 takes `--distributed-executor-backend {external_launcher,mp,ray,uni}`
(`vllm serve --help=all`, engines/vllm_serve_flags.json). Ray's own version is whatever sits in vLLM's environment;
the `ray start` flags below have been stable across Ray 2.x.

`ray start` (click options)
    --head                      start the head node: the GCS, and on it the cluster's bootstrap address
    --port PORT                 the head's GCS port (default 6379; 0 picks one). Head only: a worker node given
                                `--port` aborts ("--port should only be specified when starting head node with
                                --head"), as it does for `--include-dashboard`
    --address HOST:PORT         a worker node joins the cluster whose GCS answers there (required without --head)
    --node-ip-address IP        the address this node announces; without it Ray guesses one by opening a route
                                to the head, which may pick the wrong link on a host with two networks
    --num-gpus N                GPUs this node offers (default: what Ray detects; pinned so the cluster counts
                                exactly each rank's share)
    --block                     stay in the foreground: "This command will now block forever until terminated by
                                a signal." Every second it checks its subprocesses; one that exits with a code
                                other than 0 or SIGTERM's makes it print "Some Ray subprocesses exited
                                unexpectedly:", "Remaining processes will be killed.", SIGKILL the rest and exit 1.
                                With --block the node is built with shutdown_at_exit=True: SIGTERM stops its
                                services with it
    --disable-usage-stats       no usage report (a node here reaches nothing outside anyway)
    --include-dashboard BOOL    the dashboard (head only); off: one process and one port fewer
    --dashboard-port PORT       8265 by default; unused with the dashboard off
    It prints "Local node IP: <ip>", then "Ray runtime started." between dashes once its services run.

How Ray's services are spawned (python/ray/_private/services.py, node.py): `ray start` first tries `os.setpgrp()`
(start_reaper: "Make ourselves a process group leader"; EPERM when it already is, as a process the portal starts
in its own session), then starts gcs_server, raylet, log monitor and agents as subprocesses that inherit its
environment; Ray's workers (vLLM's RayWorkerWrapper actors) are spawned by the raylet, again with that
environment. So every Ray process carries the portal's marker in /proc/<pid>/environ and the marker sweep finds
them even where they leave the process group (a reparented worker, a reaper-less shutdown).

vLLM's Ray executor (vllm/v1/executor/ray_utils.py `initialize_ray_cluster`, ray_executor.py)
    - `ray.init(address=None)`: Ray reads RAY_ADDRESS, so the portal points the leader's `vllm serve` at its own
      head with RAY_ADDRESS=LEADER_IP:GCS_PORT (without it Ray would start a private local instance).
    - It asks for a placement group of world-size bundles of {"GPU": 1}, the first pinned to the driver's node
      ("node:<ip>": 0.001), strategy PACK. The driver's node must offer a GPU ("Current node has no GPU
      available ... vLLM engine cannot start without GPU").
    - While the cluster lacks GPUs it waits, logging "Waiting for creating a placement group of specs for N
      seconds. specs=[...]. Check `ray status` and `ray list nodes` ..." at 10, 20, 40 ... s, and gives up after
      PG_WAIT_TIMEOUT = 1800 s with "Cannot provide a placement group requiring N GPUs ... within 1800 seconds.".
    - Each worker reports its node's IP (VLLM_HOST_IP when set); "Every node should have a unique IP address"
      otherwise. The driver copies its environment to the workers except the worker-specific names
      (VLLM_HOST_IP, LOCAL_RANK, CUDA_VISIBLE_DEVICES, ...): a worker's VLLM_HOST_IP and the NCCL/Gloo
      interfaces come from its own node's `ray start`, so each node's `ray start` gets its rank's network.
    - vLLM turns Ray's usage stats off itself (RAY_USAGE_STATS_ENABLED=0).

DGX Spark (unified memory, 20 CPU cores)
    - Ray's memory monitor kills workers once the node passes RAY_memory_usage_threshold (0.95) of memory; on
      unified memory the GPU's share counts, so a load that fits is killed mid-way
      ("ray.exceptions.OutOfMemoryError ... killed due to the node running low on memory"). Ray's own hint:
      "To disable worker killing, set the environment variable `RAY_memory_monitor_refresh_ms` to zero."; the
      raylet then logs "MemoryMonitor disabled". The portal sets it on every Ray process it starts.
    - vLLM issue 21231 (open): with Ray and pipeline parallelism every node spins 100 % on several cores while
      idle (`ray::RayWorkerWrapper.__ray_call__` busy-polling Ray's compiled-graph channels). No setting cures
      it there; this is why `mp` stays the default and Ray is for teams that already run Ray.

What the portal does with this (servers/groups/ray_launch.py): the group's master port is the GCS port. Rank 0
starts `ray start --head` as a marked sidecar, waits until its GCS port answers, then runs `vllm serve ...
--distributed-executor-backend ray` with RAY_ADDRESS at that head; every other rank runs `ray start --address`
on its own node as its process, so its exit (a dying Ray node) fails the group as any rank's does.
"""
from __future__ import annotations

from pathlib import PurePosixPath

# Ray's default GCS port and its dashboard's, for reference; the portal always passes its own GCS port.
DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
# Every Ray process the portal starts: no memory monitor (unified memory counts the GPU's share as used).
RAY_ENV = {"RAY_memory_monitor_refresh_ms": "0"}
# vLLM's placement-group wait before it gives up (ray_utils.PG_WAIT_TIMEOUT).
PG_WAIT_TIMEOUT_S = 1800


def ray_executable(vllm_executable: str) -> str:
    """`ray` next to the node's `vllm`: the same environment, so the same Ray version as vLLM imports."""
    return str(PurePosixPath(vllm_executable or "vllm").with_name("ray"))


def head_argv(ray: str, *, node_ip: str, port: int, num_gpus: int) -> list[str]:
    return [ray, "start", "--head", "--node-ip-address", node_ip, "--port", str(port), "--num-gpus", str(num_gpus),
            "--block", "--disable-usage-stats", "--include-dashboard=false"]


def worker_argv(ray: str, *, head: str, node_ip: str, num_gpus: int) -> list[str]:
    return [ray, "start", "--address", head, "--node-ip-address", node_ip, "--num-gpus", str(num_gpus), "--block",
            "--disable-usage-stats"]


def head_address(master_addr: str, master_port: int) -> str:
    return f"{master_addr}:{master_port}"


def driver_env(head: str) -> dict:
    """The environment `vllm serve` adds to find the cluster (ray.init reads RAY_ADDRESS)."""
    return {**RAY_ENV, "RAY_ADDRESS": head}


def is_ray_start(argv: list[str]) -> bool:
    return len(argv) > 1 and PurePosixPath(argv[0]).name == "ray" and argv[1] == "start"
