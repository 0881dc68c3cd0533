"""A server writing 20,000 log lines/s, followed to a websocket client: lines delivered per second and lag.

The real path: the vLLM stand-in writes its log file (FAKE_VLLM_LOG_LINES_PER_S), the node's log pump
(servers.logs.LogPump) reads and publishes batches to the channel layer (Redis), daphne's events
consumer forwards them to a logged-in websocket client. Each line carries the time it was written;
lag = time received - time written. Target: every line delivered, lag p99 < 500 ms.

Usage: .venv/bin/python perf/log_stream.py [--rate 20000] [--seconds 10]
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import scratch

from sparkportal.runner import web_argv  # noqa: E402 - found through scratch's path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
LINE = re.compile(r"DEBUG line (\d+) t=([\d.]+)")



SETUP = """
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from nodes.models import Node
from servers.models import Server
user = get_user_model().objects.create_user("perf", role="operator")
node = Node.objects.create(name="perf-node", queue="node.perf-node")
server = Server.objects.create(node=node, served_model_name="perf", port={port}, status="ready")
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "accounts.sso.backends.LocalPasswordBackend"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print(server.pk, session.session_key)
"""


async def follow(url: str, cookie: str, origin: str, seconds: float, received: list, ready: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin},
                                  max_size=64 * 1024 * 1024) as ws:
        deadline = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=timeout)
            except TimeoutError:
                return
            now = time.time()
            event = json.loads(raw)
            if event["event"] == "subscribe.ok" and event["data"]["group"].startswith("servers.log."):
                ready.set()
                deadline = time.monotonic() + seconds
            elif event["event"] == "server.log":
                for line in event["data"]["lines"]:
                    match = LINE.search(line)
                    if match:
                        received.append((int(match.group(1)), now - float(match.group(2))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="perf-log-stream-"))
    web_port, engine_port = scratch.free_port(), scratch.free_port()
    redis_url, redis_proc = scratch.start_redis(var)
    env = {**os.environ, "PORTAL_VAR_DIR": str(var), "REDIS_URL": redis_url,
           "DJANGO_SETTINGS_MODULE": "sparkportal.settings", "PORTAL_NODE_NAME": "perf-node"}
    env.pop("DATABASE_URL", None)
    os.environ.update(env)
    os.environ.pop("DATABASE_URL", None)
    from sparkportal.lib import procs

    manage = [sys.executable, str(BASE / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=BASE)
    out = subprocess.run([*manage, "shell", "-c", SETUP.format(port=engine_port)], env=env, check=True, cwd=BASE,
                         capture_output=True, text=True).stdout.split()
    server_id, session_key = int(out[-2]), out[-1]
    web = procs.spawn(web_argv("127.0.0.1", web_port, "-v", "0"), env=env, log_path=str(var / "daphne.log"))
    engine = None
    import django

    django.setup()
    from servers import logs, processes

    pump = logs.LogPump(node_name="perf-node")
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{web_port}/accounts/login/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        received: list = []
        ready = asyncio.Event()

        async def run():
            follower = asyncio.create_task(follow(
                f"ws://127.0.0.1:{web_port}/ws/events/?groups=servers.log.{server_id}", f"sessionid={session_key}",
                f"http://127.0.0.1:{web_port}", args.seconds, received, ready))
            await asyncio.wait_for(ready.wait(), 10)
            nonlocal engine
            engine = processes.spawn_detached(
                [str(BASE / "tests/fakes/bin/vllm"), "serve", "perf/model", "--port", str(engine_port)],
                env={**os.environ, "FAKE_VLLM_LOG_LINES_PER_S": str(args.rate), "FAKE_VLLM_STARTUP_DELAY_S": "0"},
                log_path=logs.log_path(server_id))
            pump.start()
            await follower

        asyncio.run(run())
    finally:
        pump.stop()
        if engine is not None:
            processes.signal_group(engine.pid, 9)
        procs.stop_group(web)
        procs.stop_group(redis_proc)
    numbers = sorted(n for n, _ in received)
    lags = sorted(lag for _, lag in received)
    span = numbers[-1] - numbers[0] + 1
    delivered_share = len(set(numbers)) / span
    per_s = len(received) / args.seconds
    p50 = lags[len(lags) // 2] * 1000
    p99 = lags[int(len(lags) * 0.99)] * 1000
    line = (f"log_stream: {args.rate} lines/s written, {per_s:.0f} lines/s delivered over {args.seconds:.0f} s, "
            f"{len(set(numbers))} of {span} lines in the window delivered (ratio {delivered_share:.4f}), lag p50 "
            f"{p50:.0f} ms, p99 {p99:.0f} ms, max {lags[-1] * 1000:.0f} ms (target: all lines, p99 < 500 ms)")
    print(line)
    scratch.record(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | log_stream | {os.cpu_count()} CPU | "
                   f"{args.rate} lines/s written, {per_s:.0f} lines/s delivered, lag p50 {p50:.0f} ms, p99 {p99:.0f} ms"
                   f" | ratio {delivered_share:.4f} delivered (target 1.0, p99 < 500 ms) |")
    print("median lag ms", round(statistics.median(lags) * 1000, 1))


if __name__ == "__main__":
    main()
