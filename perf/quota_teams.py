"""Cost of counting a caller's team in the quota check: acquire + settle through accounts.limits.QuotaEngine
for a user alone, a user charged to one team (what every request counts now) and a user counted with two
teams (what a member of two teams used to cost), every limit on, interleaved rounds in one run, one embedded
Redis. Target: ratio (one team / alone) >= 0.7; also printed: one team / two teams.

Usage: .venv/bin/python perf/quota_teams.py [--requests 3000] [--concurrency 32] [--rounds 5]
"""
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import scratch

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))



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

    from sparkportal.lib import procs

    var = Path(tempfile.mkdtemp(prefix="perf-quota-teams-"))
    redis_url, redis_proc = scratch.start_redis(var)
    os.environ.update({"PORTAL_VAR_DIR": str(var), "REDIS_URL": redis_url,
                       "DJANGO_SETTINGS_MODULE": "sparkportal.settings"})
    import django

    django.setup()
    from accounts import limits

    big = 10**12
    own = limits.Limits(requests_per_minute=big, tokens_per_day=big, concurrent_requests=10**6)
    teams = tuple(limits.TeamLimits(team_id=i, name=f"t{i}", requests_per_minute=big, tokens_per_day=big,
                                    tokens_per_month=big, concurrent_requests=10**6, monthly_token_budget=big)
                  for i in (1, 2))

    async def measure() -> tuple[list[float], list[float], list[float]]:
        engine = limits.QuotaEngine(os.environ["REDIS_URL"])
        alone, one, two = [], [], []
        await run(engine, own, (), 1, 500, args.concurrency)  # warm-up: scripts loaded, connection open
        for i in range(args.rounds):
            alone.append(await run(engine, own, (), 10 + i, args.requests, args.concurrency))
            one.append(await run(engine, own, teams[:1], 100 + i, args.requests, args.concurrency))
            two.append(await run(engine, own, teams, 200 + i, args.requests, args.concurrency))
        return alone, one, two

    try:
        alone, one, two = asyncio.run(measure())
    finally:
        procs.stop_group(redis_proc)
    a, t, t2 = statistics.median(alone), statistics.median(one), statistics.median(two)
    ratio = t / a
    numbers = (f"acquire+settle: user alone {a:.0f} req/s ({1000 / a:.3f} ms each at this concurrency), "
               f"charged to 1 team {t:.0f} req/s ({1000 / t:.3f} ms each), +{1000 / t - 1000 / a:.3f} ms per "
               f"request; counted with 2 teams {t2:.0f} req/s (1 team / 2 teams {t / t2:.3f}); C={args.concurrency}, "
               f"{args.rounds} interleaved rounds x {args.requests}")
    print(f"quota_teams: {numbers}, ratio {ratio:.3f} (target >= 0.7)")
    scratch.record(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | quota_teams | {os.cpu_count()} CPU, embedded Redis | "
                   f"{numbers} | ratio {ratio:.3f} (target >= 0.7) |")


if __name__ == "__main__":
    main()
