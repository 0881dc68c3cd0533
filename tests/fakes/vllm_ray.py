"""The Ray part of the fake `vllm serve`: `--distributed-executor-backend ray` joins the cluster at RAY_ADDRESS.

As vLLM's `initialize_ray_cluster` (vllm/v1/executor/ray_utils.py) does: without RAY_ADDRESS Ray starts a private
local instance (the single-node case: this fake then goes on as before); with it, it connects to that GCS (the fake
head, tests/fakes/ray_gcs.py) and fails with Ray's error when it cannot. It needs a GPU on its own node ("Current
node has no GPU available"), then waits for a placement group of world-size GPUs, logging vLLM's "Waiting for
creating a placement group of specs for N seconds" at 10, 20, 40 ... s, and gives up after the timeout with vLLM's
"Cannot provide a placement group requiring N GPUs". Once placed it watches the cluster: a node that leaves (a Ray
worker dying) kills the engine as a dead RayWorkerWrapper actor does, exit 1.

FAKE_VLLM_RAY_CONNECT_TIMEOUT_S   how long it retries an unreachable GCS (default 30)
FAKE_VLLM_RAY_PG_TIMEOUT_S        the placement group's wait (default 1800, vLLM's PG_WAIT_TIMEOUT)
FAKE_VLLM_RAY_PG_LOG_S            the first wait between "Waiting for creating a placement group" lines (default 10)
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import psutil

from tests.fakes.vllm_serve import _env_float, log, print_traceback

PROC = "EngineCore_DP0"
WATCH_S = 0.3


def join(args) -> None:
    """Connect and wait for the placement group; exits 1 as vLLM does when it cannot."""
    world = int(args.tensor_parallel_size or 1) * int(args.pipeline_parallel_size or 1)
    address = os.environ.get("RAY_ADDRESS", "")
    if not address:
        log(PROC, "INFO", "worker.py:1917", "Started a local Ray instance.")
        sys.stdout.flush()
        return
    handle = _connect(address)
    specs = [{"GPU": 1.0} for _ in range(world)]
    specs[0][f"node:{os.environ.get('VLLM_HOST_IP', '127.0.0.1')}"] = 0.001
    log(PROC, "INFO", "ray_utils.py:349", "No current placement group found. Creating a new placement group.")
    resources = _ask(handle)
    if resources["GPU"] < world:
        log(PROC, "WARNING", "ray_utils.py:358", "The number of required GPUs exceeds the total number of available "
                                                  "GPUs in the placement group.")
    if not any(n["head"] and n["GPU"] >= 1 for n in resources["nodes"]):
        _fail([f"ValueError: Current node has no GPU available. current_node_resource={resources}. vLLM engine "
               "cannot start without GPU. Make sure you have at least 1 GPU available in a node."])
    _wait_placement(handle, world, specs)
    threading.Thread(target=_watch, args=(handle, world), daemon=True).start()


def _connect(address: str):
    host, _, port = address.rpartition(":")
    log(PROC, "INFO", "worker.py:1749", f"Connecting to existing Ray cluster at address: {address}...")
    sys.stdout.flush()
    began, last = time.monotonic(), ""
    while time.monotonic() - began < _env_float("FAKE_VLLM_RAY_CONNECT_TIMEOUT_S", 30.0):
        try:
            sock = socket.create_connection((host, int(port)), timeout=2)
            sock.settimeout(10)
            log(PROC, "INFO", "worker.py:1917", f"Connected to Ray cluster. (GCS {address})")
            sys.stdout.flush()
            return sock.makefile("rw")
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    _fail([f"ConnectionError: Failed to connect to GCS at address={address}. Last exception: {last}. "
           "Check that the Ray head started with `ray start --head` at that address and that this node reaches it."])


def _ask(handle) -> dict:
    handle.write(json.dumps({"op": "resources"}) + "\n")
    handle.flush()
    line = handle.readline()
    if not line:
        raise ConnectionError("the GCS closed the connection")
    return json.loads(line)


def _wait_placement(handle, world: int, specs: list[dict]) -> None:
    began = time.monotonic()
    limit = _env_float("FAKE_VLLM_RAY_PG_TIMEOUT_S", 1800.0)
    interval = _env_float("FAKE_VLLM_RAY_PG_LOG_S", 10.0)
    next_log = began + interval
    while _ask(handle)["GPU"] < world:
        now = time.monotonic()
        if now - began >= limit:
            _fail([f"ValueError: Cannot provide a placement group requiring {world} GPUs (placement_group_specs="
                   f"{specs}) within {limit:g} seconds.", "Tensor parallel size may exceed available GPUs in your "
                   "cluster. Check resources with `ray status` and `ray list nodes`."])
        if now >= next_log:
            interval *= 2
            next_log = now + interval
            log(PROC, "INFO", "ray_utils.py:245", f"Waiting for creating a placement group of specs for "
                f"{int(now - began)} seconds. specs={specs}. Check `ray status` and `ray list nodes` to see if you "
                "have enough resources, and make sure the IP addresses used by ray cluster are the same as "
                "VLLM_HOST_IP environment variable specified in each node if you are running on a multi-node.")
            sys.stdout.flush()
        time.sleep(0.2)


def _watch(handle, world: int) -> None:
    while True:
        time.sleep(WATCH_S)
        try:
            gpus = _ask(handle)["GPU"]
        except (OSError, ValueError, ConnectionError):
            gpus = -1
        if gpus < world:
            why = "the Ray head is gone" if gpus < 0 else f"the cluster has {gpus} of {world} GPUs left"
            log(PROC, "ERROR", "core.py:946", f"EngineCore encountered a fatal error ({why}).")
            sys.stderr.write("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task."
                             " class_name: RayWorkerWrapper\n")
            sys.stdout.flush()
            sys.stderr.flush()
            for child in psutil.Process().children(recursive=True):  # the EngineCore goes with it
                child.kill()
            os._exit(1)


def _fail(lines: list[str]) -> None:
    print_traceback(lines, frames=['/opt/vllm/lib/python3.12/site-packages/vllm/v1/executor/ray_utils.py", line 401, '
                                   "in initialize_ray_cluster"])
    sys.stderr.flush()
    os._exit(1)
