"""A model swap with vLLM's sleep mode against a cold start, through the portal's own path.

Two sleep-mode servers of the vLLM stand-in share one node (discrete GPU, 80 GB, budget 0.85, 0.5 each, so
only one fits awake). Per round, interleaved:
  swap  services.server_swap (sleep the ready one at level 1, wake the sleeping one, admitted as one step)
        -> the node's worker (a real Celery worker) asks both engines and confirms -> woken one ready
        -> first streamed token from it;
  cold  the ready one stopped (not timed), then started again (services.server_restart) -> supervisor
        spawn -> /health -> ready -> first streamed token.
The engines' own times are scripted (env): a cold load of --load-s (default 10 s; vLLM 0.26 took 45-106 s for a
tiny model on an H100), sleep 0.14 s and wake 0.04 s (as measured there). What the numbers add on top is the
portal's. Target: a level-1 swap at least 5x faster than a cold start.

Usage: .venv/bin/python perf/swap.py [--rounds 3] [--load-s 10]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import scratch

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
FAKES = BASE / "tests" / "fakes"
NODE = "perf-node"



def wait_for(server, done, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if done(server):
            return server
        time.sleep(0.01)
    raise RuntimeError(f"server #{server.pk} stayed {server.status}: {server.status_reason}")


def first_token(server) -> None:
    body = {"model": server.served_model_name, "prompt": "hi", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                return
    raise RuntimeError("no token came")


def setup(load_s: float):
    """A node of the stand-in, an operator and two sleep-mode profiles; the first asleep, the second ready."""
    from accounts.models import User
    from models_registry.models import ModelProfile
    from nodes.models import Node
    from servers import services
    from sparkportal.celery import node_queue

    user = User.objects.create_user("perf", role="operator")
    node, _ = Node.objects.update_or_create(name=NODE, defaults={
        "queue": node_queue(NODE), "vllm_executable": str(FAKES / "bin" / "vllm"), "memory_budget": 0.85,
        "stop_timeout_s": 5, "extra_env": {"PYTHONPATH": str(FAKES / "site")},
        "gpu_facts": [{"index": 0, "memory_total_gb": 80.0, "memory_used_gb": 1.0}]})
    env = {"FAKE_VLLM_STARTUP_DELAY_S": str(load_s), "FAKE_VLLM_SLEEP_DELAY_S": "0.14",
           "FAKE_VLLM_WAKE_DELAY_S": "0.04"}
    servers = []
    for name in ("swap-a", "swap-b"):
        profile = ModelProfile.objects.create(name=name, repo_id="Qwen/Qwen3-0.6B", served_model_name=name,
                                              gpu_memory_utilization=0.5, max_model_len=4096,
                                              enable_sleep_mode=True, extra_env=env)
        server = wait_for(services.server_start(user=user, profile=profile, node=node, port=scratch.free_port()),
                          lambda s: s.status in ("ready", "failed"))
        if server.status != "ready":
            raise RuntimeError(f"{name} did not start: {server.status_reason}")
        if not servers:
            services.server_sleep(user=user, server=server, level=1)
            wait_for(server, lambda s: s.slept_at is not None)
        servers.append(server)
    return user, servers


def swap_once(user, ready, asleep) -> float:
    from servers import services

    began = time.perf_counter()
    services.server_swap(user=user, sleep=ready, wake=asleep, level=1)
    wait_for(asleep, lambda s: s.status == "ready")
    first_token(asleep)
    took = time.perf_counter() - began
    wait_for(ready, lambda s: s.slept_at is not None)
    return took


def cold_once(user, ready) -> float:
    from servers import services

    services.server_stop(user=user, server=ready)
    wait_for(ready, lambda s: s.status == "stopped")
    began = time.perf_counter()
    services.server_restart(user=user, server=ready)
    wait_for(ready, lambda s: s.status in ("ready", "failed"))
    first_token(ready)
    return time.perf_counter() - began


SECTION = "### perf/swap.py (sleep-mode swap against a cold start)"
INTRO = """
Two sleep-mode servers of the vLLM stand-in on one node (discrete GPU, 0.5 each, budget 0.85: only one fits awake),
driven through the portal's services and a real Celery worker. Swap = services.server_swap (level 1) until the
woken server is ready, then its first streamed token; cold = services.server_restart of a stopped server until
ready, then its first token. The engines' own times are scripted (load, sleep 0.14 s, wake 0.04 s as vLLM 0.26
took on an H100): the difference to them is the portal's.

| date | benchmark | machine | numbers | ratio |
|---|---|---|---|---|"""


def record(line: str, row: str) -> None:
    """Print the line and add the row to this benchmark's table in perf/RESULTS.md (made on its first run)."""
    print(line)
    path = BASE / "perf" / "RESULTS.md"
    lines = path.read_text().rstrip("\n").splitlines()
    if SECTION not in lines:
        lines += ["", SECTION, *INTRO.splitlines()]
    at = lines.index(SECTION) + 1
    while at < len(lines) and not lines[at].startswith("### "):
        at += 1
    while not lines[at - 1].startswith("|"):
        at -= 1
    lines.insert(at, row)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load-s", type=float, default=10.0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="perf-swap-"))
    redis_url, redis_proc = scratch.start_redis(var)
    env = {"PORTAL_VAR_DIR": str(var), "REDIS_URL": redis_url,
           "DJANGO_SETTINGS_MODULE": "sparkportal.settings", "PORTAL_NODE_NAME": NODE,
           "PORTAL_ENGINE_PORT_FIRST": "30100", "PORTAL_ENGINE_PORT_LAST": "30199"}
    os.environ.update(env)
    os.environ.pop("DATABASE_URL", None)
    from sparkportal.lib import procs

    subprocess.run([sys.executable, str(BASE / "manage.py"), "migrate", "-v", "0"], env=os.environ, check=True,
                   cwd=BASE)
    worker = procs.spawn([sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q",
                          f"default,node.{NODE}", "-n", f"perf@{NODE}", "--pool", "threads", "-c", "4", "-l",
                          "warning"], env=dict(os.environ), log_path=str(var / "worker.log"))
    import django

    django.setup()
    swaps, colds, servers = [], [], []
    try:
        user, servers = setup(args.load_s)
        asleep, ready = servers
        for _ in range(args.rounds):
            swaps.append(swap_once(user, ready, asleep))
            ready, asleep = asleep, ready
            colds.append(cold_once(user, ready))
    finally:
        from servers import services

        for server in servers:
            server.refresh_from_db()
            if server.is_live and server.status != "stopping":
                services.server_stop(user=user, server=server)
            wait_for(server, lambda s: s.status in ("stopped", "failed"), timeout=30)
        procs.stop_group(worker)
        procs.stop_group(redis_proc)
    swap, cold = statistics.median(swaps), statistics.median(colds)
    ratio = cold / swap
    numbers = (f"cold start (scripted load {args.load_s:g} s) to first token {cold:.2f} s, level-1 swap (sleep one, "
               f"wake another, first token; scripted sleep 0.14 s, wake 0.04 s) {swap:.2f} s, medians of "
               f"{args.rounds} interleaved rounds; swaps {[round(s, 2) for s in swaps]}, cold "
               f"{[round(c, 2) for c in colds]}")
    line = f"swap: {numbers}; ratio {ratio:.1f} (target >= 5)"
    row = (f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | swap (sleep mode) | {os.cpu_count()} CPU, vLLM stand-in, "
           f"real Celery worker, SQLite | {numbers} | ratio {ratio:.1f} (target >= 5) |")
    if args.no_record:
        print(line)
    else:
        record(line, row)


if __name__ == "__main__":
    main()
