"""A rank of a Ray group on its own node: the head of rank 0, the `ray start --address` of the others, their env.

The group's master port is the head's GCS port. Rank 0 starts `ray start --head --block` as a sidecar that carries
the server's marker (so a stop's sweep reaches it and every daemon it spawned), waits until the GCS port answers,
then runs `vllm serve ... --distributed-executor-backend ray` with RAY_ADDRESS at that head: vLLM's Ray executor
places its workers across the cluster. Every other rank's process is `ray start --address ... --block` itself, so
a Ray node that dies is a rank that exits and fails the group. Facts and sources: engines/ray_cluster.py.
"""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings

from engines import ray_cluster
from nodes import network
from servers import processes
from servers.groups import admission
from servers.models import Server, ServerGroup


def is_ray(server: Server) -> bool:
    return server.group_id is not None and server.profile is not None and \
        server.profile.distributed_backend == "ray"


def _head(group: ServerGroup) -> str:
    return ray_cluster.head_address(group.master_addr, group.master_port)


def _gpus(server: Server) -> int:
    return max(1, admission.placement_of(server.profile).gpus_per_node)


def _node_ip(server: Server) -> str:
    return server.node.host_ip or settings.PORTAL_ENGINE_HOST


def follower_argv(server: Server, *, group: ServerGroup) -> list[str]:
    """A follower's whole process: a Ray worker node joining the leader's head, in the foreground."""
    ray = ray_cluster.ray_executable(server.node.vllm_executable)
    return ray_cluster.worker_argv(ray, head=_head(group), node_ip=_node_ip(server), num_gpus=_gpus(server))


def rank_env(server: Server) -> dict:
    """What every Ray process of this rank adds: no memory monitor; the leader's `vllm serve` finds its head."""
    if server.rank == 0:
        return ray_cluster.driver_env(_head(ServerGroup.objects.get(pk=server.group_id)))
    return dict(ray_cluster.RAY_ENV)


def start_head(server: Server, *, env: dict, log_path: Path) -> processes.Spawned:
    """Spawn the leader's `ray start --head` (same marker, same log) and wait until its GCS port answers.

    Raises with the reason when the head exits or does not answer within PORTAL_RAY_HEAD_TIMEOUT_S; the
    caller fails the rank, and the failure's sweep kills whatever the head had started.
    """
    group = ServerGroup.objects.get(pk=server.group_id)
    argv = ray_cluster.head_argv(ray_cluster.ray_executable(server.node.vllm_executable), node_ip=_node_ip(server),
                                 port=group.master_port, num_gpus=_gpus(server))
    head_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}  # the head is the address, it joins none
    with open(log_path, "ab") as fh:
        fh.write(f"--- spark portal: starting the Ray head of server #{server.pk}: {' '.join(argv)}\n".encode())
    spawned = processes.spawn_detached(argv, env=head_env, log_path=log_path, cwd=str(settings.VAR_DIR))
    _wait_head(spawned, group=group, argv=argv)
    return spawned


def _wait_head(spawned: processes.Spawned, *, group: ServerGroup, argv: list[str]) -> None:
    deadline = time.monotonic() + settings.PORTAL_RAY_HEAD_TIMEOUT_S
    while True:
        if not processes.alive(spawned.pid, spawned.started_at):
            raise RuntimeError(f"the Ray head (`{argv[0]} start --head`) exited before its GCS port "
                               f"{_head(group)} answered; its lines are in this server's log")
        if network.reach(group.master_addr, group.master_port, timeout_s=0.1).ok:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray head did not answer on {_head(group)} within "
                               f"{settings.PORTAL_RAY_HEAD_TIMEOUT_S:g} s (PORTAL_RAY_HEAD_TIMEOUT_S)")
        time.sleep(0.2)
