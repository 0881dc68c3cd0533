"""What balancing across replicas costs a request: the gateway's `choose` (in-flight counts of every gateway
process, one Redis round trip) against the process-local `pick` it replaced, on the same routing table.

Two ready replicas of one model on two nodes (rows only, no engine: routing never connects). Per round,
interleaved: N calls of `RoutingTable.pick` and N calls of `RoutingTable.choose`, each call between a held
request's `inflight_acquire` and `inflight_release` as the gateway does (their cost is the same for both and
not timed). Prints the per-call medians and their ratio; appends a row to perf/RESULTS.md with --record.

Usage: REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python perf/routing.py [--calls 2000] [--rounds 3]
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

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def setup() -> None:
    tmp = tempfile.mkdtemp(prefix="perf-routing-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/db.sqlite3")
    os.environ.setdefault("PORTAL_VAR_DIR", tmp)
    os.environ.setdefault("SECRET_KEY", "perf-routing")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.utils import timezone

    from models_registry.models import ModelProfile
    from nodes.models import Node
    from servers.models import Server

    profile = ModelProfile.objects.create(name="rep", repo_id="Qwen/Qwen3-0.6B", served_model_name="rep")
    for i, name in enumerate(("spark1", "spark2")):
        node = Node.objects.create(name=name, queue=f"node.{name}", last_heartbeat_at=timezone.now())
        Server.objects.create(node=node, profile=profile, served_model_name="rep", host=f"127.0.0.{i + 2}",
                              port=8100, status="ready")


async def measure(calls: int, rounds: int) -> tuple[list[float], list[float]]:
    from gateway import inflight
    from gateway.routing import RoutingTable

    table = RoutingTable()
    await table.refresh()
    local, shared = [], []
    for _ in range(rounds):
        for name, out in (("pick", local), ("choose", shared)):
            spent = 0.0
            for i in range(calls):
                await inflight.inflight_acquire(1, f"held-{i}")
                t0 = time.perf_counter()
                route = table.pick("rep") if name == "pick" else await table.choose("rep")
                spent += time.perf_counter() - t0
                await inflight.inflight_release(1, f"held-{i}")
                assert route is not None
            out.append(spent / calls * 1e6)
    return local, shared


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    setup()
    local, shared = asyncio.run(measure(args.calls, args.rounds))
    pick_us, choose_us = statistics.median(local), statistics.median(shared)
    line = (f"pick (this process's counts) {pick_us:.1f} µs/call, choose (every gateway's counts, Redis) "
            f"{choose_us:.1f} µs/call, medians of {args.rounds} interleaved rounds of {args.calls}; "
            f"rounds pick {[round(x, 1) for x in local]}, choose {[round(x, 1) for x in shared]}")
    ratio = f"+{choose_us - pick_us:.0f} µs per request routed among 2 replicas (target: well under the gateway's " \
            "1.3 ms TTFT overhead)"
    print(line)
    print(ratio)
    if args.record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        with open(BASE / "perf" / "RESULTS.md", "a") as fh:
            load = os.getloadavg()[0]
            fh.write(f"| {stamp} | routing across replicas (perf/routing.py) | {os.cpu_count()} CPU, local Redis, load "
                     f"average {load:.1f} | {line} | {ratio} |\n")


if __name__ == "__main__":
    main()
