"""The multi-node part of the fake `vllm serve`: a real rendezvous of its ranks over the network.

With `--nnodes N --node-rank R --master-addr A --master-port P` every rank joins a `torch.distributed`
process group (gloo, on CPU, over GLOO_SOCKET_IFNAME when set) at tcp://A:P, as vLLM's multiprocessing
executor does, and they all-reduce a tensor: a follower that cannot reach the leader fails after the
rendezvous timeout with torch's own error, and the leader waits until every follower has joined before it
loads the model and answers HTTP. Rank > 0 runs headless (no API server).

Once joined, followers beat into the leader's store: a follower whose leader is gone exits 1, and a leader
that misses a follower's beats for FAKE_VLLM_PEER_TIMEOUT_S exits 1, as vLLM's ranks die with their peers.

As the real vLLM 0.26 did on an H100 (perf/real_vllm/README.md, "Engine facts"): a follower prints `Launching vLLM
(vX) headless multiproc executor, with head node address A:P`, then its TCPStore client waits for an absent leader
for 600 s, and a leader waits as long for an absent follower: neither fails fast.

FAKE_VLLM_RENDEZVOUS_TIMEOUT_S  how long a rank waits for the others (default 600, torch's store timeout)
FAKE_VLLM_PEER_TIMEOUT_S        missed beats before the leader gives a follower up (default 3)
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import timedelta

from tests.fakes.vllm_serve import VERSION, _env_float, log

BEAT_S = 0.3


def rendezvous(args):
    """Join the group (blocks until every rank has); exits 1 with torch's error when it cannot."""
    import torch
    import torch.distributed as dist

    rank, world = int(args.node_rank or 0), int(args.nnodes)
    url = f"tcp://{args.master_addr}:{args.master_port}"
    if rank > 0:
        log("Headless", "INFO", "launcher.py:96", f"Launching vLLM (v{VERSION}) headless multiproc executor, with "
            f"head node address {args.master_addr}:{args.master_port}")
    log("APIServer" if rank == 0 else "Headless", "INFO", "multiproc_executor.py:112",
        f"Multi-node launch: node rank {rank} of {world}, master {args.master_addr}:{args.master_port}, "
        f"GLOO_SOCKET_IFNAME={os.environ.get('GLOO_SOCKET_IFNAME', '')}, "
        f"NCCL_SOCKET_IFNAME={os.environ.get('NCCL_SOCKET_IFNAME', '')}, "
        f"VLLM_HOST_IP={os.environ.get('VLLM_HOST_IP', '')}")
    sys.stdout.flush()
    timeout = timedelta(seconds=_env_float("FAKE_VLLM_RENDEZVOUS_TIMEOUT_S", 600.0))
    try:
        dist.init_process_group("gloo", init_method=url, rank=rank, world_size=world, timeout=timeout)
        joined = torch.tensor([1])
        dist.all_reduce(joined)
    except Exception as exc:  # noqa: BLE001 - the rank fails the way vLLM's does: the error, then exit 1
        sys.stderr.write(f"Traceback (most recent call last):\n  File \"/opt/vllm/lib/python3.12/site-packages/vllm/"
                         f"distributed/parallel_state.py\", line 1288, in init_distributed_environment\n"
                         f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}\n")
        sys.stderr.flush()
        os._exit(1)
    log("APIServer" if rank == 0 else "Headless", "INFO", "parallel_state.py:1301",
        f"world_size={world} rank={rank} joined at {url} ({int(joined.item())} ranks) backend=gloo")
    sys.stdout.flush()
    store = dist.distributed_c10d._get_default_store()
    if rank == 0:
        threading.Thread(target=_watch_followers, args=(store, world), daemon=True).start()
    return store


def _watch_followers(store, world: int) -> None:
    limit = _env_float("FAKE_VLLM_PEER_TIMEOUT_S", 3.0)
    while True:
        time.sleep(BEAT_S)
        now = time.time()
        for rank in range(1, world):
            try:
                last = float(store.get(f"beat/{rank}").decode())
            except Exception:  # noqa: BLE001 - the store lives in this process; a read error is no beat
                last = 0.0
            if now - last > limit:
                log("APIServer", "ERROR", "multiproc_executor.py:254",
                    f"Worker on node rank {rank} died (no heartbeat for {limit:g} s): shutting down")
                sys.stdout.flush()
                if os.getpgrp() == os.getpid():  # launched in its own session: take the EngineCore along
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os._exit(1)


def follow(store, args) -> int:
    """A headless rank: beat into the leader's store until SIGTERM, exit 1 once the leader is gone."""
    rank = int(args.node_rank)
    stop = {"now": False}

    def on_term(signum, frame):
        log("Headless", "INFO", "launcher.py:71", "[shutdown] headless worker: signal received")
        sys.stdout.flush()
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    log("Headless", "INFO", "serve.py:240", f"Running in headless mode, node rank {rank}: no API server here")
    sys.stdout.flush()
    while not stop["now"]:
        try:
            store.set(f"beat/{rank}", str(time.time()))
        except Exception as exc:  # noqa: BLE001 - the leader (and its store) is gone
            log("Headless", "ERROR", "multiproc_executor.py:254", f"Lost the connection to the master node "
                f"{args.master_addr}:{args.master_port} ({type(exc).__name__}): shutting down")
            sys.stdout.flush()
            return 1
        time.sleep(BEAT_S)
    return 0
