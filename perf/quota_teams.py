"""Cost of counting a caller's teams in the quota check: acquire + settle through accounts.limits.QuotaEngine
for a user alone vs a user in two teams (every limit on), interleaved rounds in one run, one embedded Redis.
The figure that matters is the added time per request; target: ratio (alone / with two teams) >= 0.7.

Usage: .venv/bin/python perf/quota_teams.py [--requests 3000] [--concurrency 32] [--rounds 5]
"""
import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run(engine, limits, teams, user_id: int, total: int, concurrency: int) -> float:
    """Requests (acquire then settle) per second."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            verdict = await engine.acquire(user_id=user_id, generation="0", limits=limits, reserve=50,
                                           server_id=1, teams=teams)
            assert verdict.outcome == 0, verdict
            await engine.settle(verdict.ticket, actual_tokens=20)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from sparkportal.lib import embedded_redis, procs

    var = Path(tempfile.mkdtemp(prefix="perf-quota-teams-"))
    port = free_port()
    os.environ.update({"PORTAL_VAR_DIR": str(var), "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                       "DJANGO_SETTINGS_MODULE": "sparkportal.settings"})
    redis_proc = embedded_redis.start(port=port, data_dir=var / "redis", persist=False)
    import django

    django.setup()
    from accounts import limits

    big = 10**12
    own = limits.Limits(requests_per_minute=big, tokens_per_day=big, concurrent_requests=10**6)
    teams = tuple(limits.TeamLimits(team_id=i, name=f"t{i}", requests_per_minute=big, tokens_per_day=big,
                                    tokens_per_month=big, concurrent_requests=10**6, monthly_token_budget=big)
                  for i in (1, 2))

    async def measure() -> tuple[list[float], list[float]]:
        engine = limits.QuotaEngine(os.environ["REDIS_URL"])
        alone, with_teams = [], []
        await run(engine, own, (), 1, 500, args.concurrency)  # warm-up: scripts loaded, connection open
        for i in range(args.rounds):
            alone.append(await run(engine, own, (), 10 + i, args.requests, args.concurrency))
            with_teams.append(await run(engine, own, teams, 100 + i, args.requests, args.concurrency))
        return alone, with_teams

    try:
        alone, with_teams = asyncio.run(measure())
    finally:
        procs.stop_group(redis_proc)
    a, t = statistics.median(alone), statistics.median(with_teams)
    ratio = t / a
    numbers = (f"acquire+settle: user alone {a:.0f} req/s ({1000 / a:.3f} ms each at this concurrency), "
               f"user in 2 teams {t:.0f} req/s ({1000 / t:.3f} ms each), +{1000 / t - 1000 / a:.3f} ms per request; "
               f"C={args.concurrency}, "
               f"{args.rounds} interleaved rounds x {args.requests}")
    print(f"quota_teams: {numbers}, ratio {ratio:.3f} (target >= 0.7)")
    with open(BASE / "perf" / "RESULTS.md", "a") as fh:
        fh.write(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | quota_teams | {os.cpu_count()} CPU, embedded Redis | "
                 f"{numbers} | ratio {ratio:.3f} (target >= 0.7) |\n")


if __name__ == "__main__":
    main()
