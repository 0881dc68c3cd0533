#!/usr/bin/env python
"""The fair queue at saturation: does a light user still get answers fast, and what does the queue cost?

    .venv/bin/python perf/fairness.py [--seconds 20] [--cap 8] [--heavy-streams 4] [--no-record]

A scratch portal (SQLite + embedded Redis in a temp folder): nine members with API keys, one ready server
of the vLLM stand-in (tests/fakes) started with --max-num-seqs CAP, so that like vLLM it runs CAP requests
at once and queues the rest in arrival order, scripted to 100 ms to the first token and 20 ms per token
(20 tokens: about half a second a request). The queue's cap on the server is the same CAP.

1. Uncontended: the light user alone, one streamed request after another: TTFT p50.
2. Saturation, the same workload through two gateways in turn (daphne, one process each): 8 heavy users
   with HEAVY_STREAMS back-to-back streams each (4x the server's slots) and the light user with one
   request at a time. (a) PORTAL_QUEUE_ENABLED=1, the fair queue; (b) PORTAL_QUEUE_ENABLED=0, requests go
   straight to the engine and wait in its own queue.
Printed: the light user's TTFT p50 under saturation over its uncontended p50 (target <= 2), and the
completions per second through the queue over those without it (target >= 0.9). A dated row goes to
perf/RESULTS.md.
"""
import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import scratch

from sparkportal.runner import web_argv  # found through scratch's path

BASE = Path(__file__).resolve().parent.parent
FAKE_VLLM = BASE / "tests" / "fakes" / "bin" / "vllm"
MODEL = "fair-model"
HEAVY_USERS = 8
PAYLOAD = {"model": MODEL, "messages": [{"role": "user", "content": "tell me"}], "max_tokens": 20,
           "ignore_eos": True, "stream": True}


def setup_portal(var_dir: Path, engine_port: int, cap: int) -> list[str]:
    """Scratch database + Redis, nine users with keys, the server with its cap; returns the keys (light last)."""
    scratch.setup_django(var_dir, name="fairness")
    from accounts import services
    from accounts.models import User
    from gateway.models import ServerCapacity
    from nodes.models import Node
    from servers.models import Server

    keys = []
    for i in range(HEAVY_USERS + 1):
        user = User.objects.create_user(username=f"user{i}", password="perf-Secret-123", role="member")
        keys.append(services.api_key_create(owner=user, name="perf")[1])
    node = Node.objects.create(name="perf", queue="node.perf")
    server = Server.objects.create(node=node, served_model_name=MODEL, host="127.0.0.1", port=engine_port,
                                   status=Server.Status.READY)
    ServerCapacity.objects.create(server=server, max_in_flight=cap)
    return keys


def start_engine(port: int, cap: int) -> subprocess.Popen:
    env = dict(os.environ, SPT_NOENV="1", FAKE_VLLM_STARTUP_DELAY_S="0", FAKE_VLLM_TTFT_S="0.1",
               FAKE_VLLM_TOKEN_DELAY_S="0.02")
    proc = subprocess.Popen([str(FAKE_VLLM), "serve", MODEL, "--port", str(port), "--max-num-seqs", str(cap),
                             "--disable-uvicorn-access-log"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc


def start_gateway(port: int, var_dir: Path, *, queue: bool) -> subprocess.Popen:
    env = dict(os.environ, PORTAL_QUEUE_ENABLED="1" if queue else "0", PORTAL_USAGE_FLUSH_S="1")
    log = open(var_dir / f"daphne-{'queue' if queue else 'plain'}.log", "w")  # noqa: SIM115 - for its life
    proc = subprocess.Popen(web_argv("127.0.0.1", port), cwd=BASE, env=env, stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/accounts/login/")
    return proc


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


async def one(client: httpx.AsyncClient, url: str, key: str) -> float | None:
    """One streamed request; its TTFT (first token: not the role event nor keep-alive comments), None if it failed."""
    began = time.perf_counter()
    ttft = None
    async with client.stream("POST", url, headers={"Authorization": f"Bearer {key}"}, json=PAYLOAD) as response:
        if response.status_code != 200:
            await response.aread()
            return None
        async for line in response.aiter_lines():
            if ttft is None and line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                ttft = time.perf_counter() - began
    return ttft


async def workload(base: str, keys: list[str], *, seconds: float, heavy_streams: int, light_only: bool) -> dict:
    url = f"{base}/v1/chat/completions"
    stop_at = time.monotonic() + seconds
    done = {"heavy": 0, "light": 0, "failed": 0}
    light_ttft: list[float] = []

    async def loop(client, key, who):
        while time.monotonic() < stop_at:
            ttft = await one(client, url, key)
            if ttft is None:
                done["failed"] += 1
                continue
            done[who] += 1
            if who == "light":
                light_ttft.append(ttft)
                await asyncio.sleep(0.05)  # a person's next question, not a flood

    streams = 0 if light_only else HEAVY_USERS * heavy_streams
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=streams + 4)) as client:
        await one(client, url, keys[-1])  # warm: routing table, key cache, connections
        began = time.monotonic()
        tasks = [loop(client, keys[-1], "light")]
        if not light_only:
            tasks += [loop(client, keys[i % HEAVY_USERS], "heavy") for i in range(streams)]
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - began
    return {"light_ttft_p50": statistics.median(light_ttft), "light_n": len(light_ttft),
            "per_s": (done["heavy"] + done["light"]) / elapsed, **done}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--cap", type=int, default=8)
    p.add_argument("--heavy-streams", type=int, default=4, help="back-to-back streams per heavy user")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    var_dir = scratch.scratch_dir("fairness")
    engine_port = scratch.free_port()
    keys = setup_portal(var_dir, engine_port, a.cap)
    engine = start_engine(engine_port, a.cap)
    results = {}
    try:
        for queue in (True, False):
            port = scratch.free_port()
            gateway = start_gateway(port, var_dir, queue=queue)
            try:
                base = f"http://127.0.0.1:{port}"
                if queue:
                    results["alone"] = asyncio.run(workload(base, keys, seconds=a.seconds / 2,
                                                            heavy_streams=a.heavy_streams, light_only=True))
                results["queue" if queue else "plain"] = asyncio.run(
                    workload(base, keys, seconds=a.seconds, heavy_streams=a.heavy_streams, light_only=False))
            finally:
                stop(gateway)
    finally:
        stop(engine)
    alone, fair, plain = results["alone"], results["queue"], results["plain"]
    ttft_ratio = fair["light_ttft_p50"] / alone["light_ttft_p50"]
    throughput_ratio = fair["per_s"] / plain["per_s"]
    line = (f"RESULT fairness: light TTFT p50 alone {alone['light_ttft_p50'] * 1000:.0f} ms, at saturation through "
            f"the queue {fair['light_ttft_p50'] * 1000:.0f} ms (ratio {ttft_ratio:.2f}, target <= 2), without it "
            f"{plain['light_ttft_p50'] * 1000:.0f} ms; throughput {fair['per_s']:.1f} vs {plain['per_s']:.1f} req/s "
            f"(ratio {throughput_ratio:.3f}, target >= 0.9); light completions {fair['light']} vs {plain['light']}, "
            f"failed {fair['failed']}/{plain['failed']}")
    print(line)
    if not a.no_record:
        date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
        md = (f"| {date} | fairness (fair queue) | {os.cpu_count()} CPU, Python {platform.python_version()}, vLLM "
              f"stand-in --max-num-seqs {a.cap} (100 ms TTFT, 20 x 20 ms tokens), daphne | 8 heavy users x "
              f"{a.heavy_streams} streams + 1 light user, {a.seconds:g} s each way: light TTFT p50 alone "
              f"{alone['light_ttft_p50'] * 1000:.0f} ms, saturated with the queue {fair['light_ttft_p50'] * 1000:.0f}"
              f" ms, without it {plain['light_ttft_p50'] * 1000:.0f} ms; {fair['per_s']:.1f} vs {plain['per_s']:.1f}"
              f" req/s | TTFT ratio {ttft_ratio:.2f} (target <= 2), throughput ratio {throughput_ratio:.3f} "
              f"(target >= 0.9) |")
        scratch.record(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
