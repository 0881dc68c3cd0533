"""Requests/s to an API-key-authenticated endpoint vs the same endpoint without credentials,
interleaved in one run through one daphne process. Target: ratio >= 0.9.

Usage: .venv/bin/python perf/api_auth.py [--requests 3000] [--concurrency 16] [--rounds 5]
"""
import argparse
import asyncio
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

from sparkportal.runner import web_argv  # noqa: E402 - found through scratch's path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))



async def blast(url: str, headers: dict, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        remaining = total

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.get(url, headers=headers)
                assert response.status_code == 200, response.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up connections
        remaining = total
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from sparkportal.lib import procs

    var = Path(tempfile.mkdtemp(prefix="perf-api-auth-"))
    web_port = scratch.free_port()
    redis_url, redis_proc = scratch.start_redis(var)
    env = {**os.environ, "PORTAL_VAR_DIR": str(var), "REDIS_URL": redis_url,
           "DJANGO_SETTINGS_MODULE": "sparkportal.settings"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(BASE / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=BASE)
    subprocess.run([*manage, "shell", "-c", "from accounts.models import User; User.objects.create_user('bench')"],
                   env=env, check=True, cwd=BASE)
    out = subprocess.run([*manage, "apikey", "create", "bench", "--name", "perf"], env=env, check=True, cwd=BASE,
                         capture_output=True, text=True).stdout
    key = out.strip().splitlines()[-1]
    web = procs.spawn(web_argv("127.0.0.1", web_port, "-v", "0"), env=env, log_path=str(var / "daphne.log"))
    url = f"http://127.0.0.1:{web_port}/api/version"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).json()["user"] == "bench"
        anon, keyed = [], []
        for _ in range(args.rounds):
            anon.append(asyncio.run(blast(url, {}, args.requests, args.concurrency)))
            keyed.append(asyncio.run(blast(url, {"Authorization": f"Bearer {key}"}, args.requests,
                                           args.concurrency)))
    finally:
        procs.stop_group(web)
        procs.stop_group(redis_proc)
    ratios = [k / a for k, a in zip(keyed, anon, strict=True)]
    ratio = statistics.median(ratios)
    line = (f"api_auth: keyed {statistics.median(keyed):.0f} req/s vs anonymous {statistics.median(anon):.0f} req/s, "
            f"ratio {ratio:.3f} (target >= 0.9; {args.rounds} interleaved rounds x {args.requests} requests, "
            f"C={args.concurrency}, one daphne process, SQLite)")
    print(line)
    scratch.record(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | api_auth | {os.cpu_count()} CPU | "
                   f"keyed {statistics.median(keyed):.0f} req/s, anonymous {statistics.median(anon):.0f} req/s | "
                   f"ratio {ratio:.3f} (target >= 0.9) |")


if __name__ == "__main__":
    main()
