#!/usr/bin/env python
"""Gateway overhead: the shared perf-peers A/B harness against the portal's /v1, whole hot path on.

    .venv/bin/python perf/gateway.py [--server daphne|uvicorn] [--rounds 3] [--levels 1:400,32:1000,128:1000]

Sets up a scratch portal (SQLite + embedded Redis in a temp folder, or DATABASE_URL/REDIS_URL when
set): a member with a real API key, a quota with every limit switched on (requests/min, tokens/day,
concurrency; set high enough not to refuse the benchmark), and a ready Server row for
"stub-model" pointing at the harness's upstream stub. Then runs the harness's run_gateway.sh,
which pins the stub and load generator to core 0 and the portal (one process) to core 1, and
measures direct (A) and through the portal (B) interleaved in the same run. Afterwards it checks
that one usage row per gateway request reached the ledger, prints one RESULT line, and appends
a dated row to perf/RESULTS.md.
"""
import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import scratch

BASE = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("PERF_PEERS_DIR") or next(
    (p for p in (BASE.parent / "shared" / "perf-peers", BASE.parent.parent / "shared" / "perf-peers") if p.exists()),
    BASE.parent / "shared" / "perf-peers"))
UPSTREAM_PORT = 18000


def setup_portal(var_dir: Path) -> str:
    """Scratch database + Redis, then the user, key, quota and Server row; returns the key."""
    scratch.setup_django(var_dir, name="gateway")
    from accounts import services
    from accounts.models import User
    from nodes.models import Node
    from servers.models import Server

    user = User.objects.create_user(username="perf", password="perf-Secret-123", role="member")
    services.quota_set(actor=user, user=user, requests_per_minute=10_000_000, tokens_per_day=10**15,
                       concurrent_requests=100_000)
    _key, raw = services.api_key_create(owner=user, name="perf")
    node = Node.objects.create(name="perf", queue="node.perf")
    Server.objects.create(node=node, served_model_name="stub-model", host="127.0.0.1", port=UPSTREAM_PORT,
                          status=Server.Status.READY)
    return raw


def gateway_command(server: str, port: int) -> list[str]:
    venv_bin = Path(sys.executable).parent
    if server == "uvicorn":
        return [str(venv_bin / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--no-access-log", "--lifespan", "on", "--log-level", "warning",
                "sparkportal.asgi:application"]
    return [str(venv_bin / "daphne"), "-b", "127.0.0.1", "-p", str(port), "sparkportal.asgi:application"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--levels", default="1:400,32:1000,128:1000")
    p.add_argument("--extra", default="", help="more abbench.py arguments")
    p.add_argument("--no-record", action="store_true", help="do not append to perf/RESULTS.md")
    a = p.parse_args()
    if not (HARNESS / "run_gateway.sh").exists():
        print(f"perf-peers harness not found at {HARNESS}: set PERF_PEERS_DIR", file=sys.stderr)
        return 2
    var_dir = scratch.scratch_dir("gateway")
    key = setup_portal(var_dir)
    port = scratch.free_port()
    label = f"sparkportal-{a.server}"
    out = var_dir / f"{label}.json"
    env = dict(os.environ, ABBENCH_ARGS=f"--rounds {a.rounds} --levels {a.levels} {a.extra}".strip())
    cmd = ["bash", str(HARNESS / "run_gateway.sh"), "--label", label, "--gateway-url",
           f"http://127.0.0.1:{port}/v1", "--key", key, "--upstream-port", str(UPSTREAM_PORT), "--out", str(out),
           "--log", str(var_dir / "gateway.log"), "--", *gateway_command(a.server, port)]
    print("running:", " ".join(cmd[:-5]), "...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=BASE, env=env)  # the harness prints its progress as it goes
    if proc.returncode != 0 or not out.exists():
        print(f"harness failed (exit {proc.returncode}); gateway log: {var_dir / 'gateway.log'}", file=sys.stderr)
        return 1
    doc = json.loads(out.read_text())
    rows = ledger_rows()
    # Redone pairs (other processes too busy) also went through the gateway: count them with the kept ones.
    gateway_requests = sum(r.get("ok", 0) + r.get("errors", 0) for r in doc["runs"] + doc.get("discarded", [])
                           if r.get("target") == "gateway")
    line, md = summarize(doc, label, rows, gateway_requests)
    print(line)
    if not a.no_record:
        scratch.record(md)
    return 0


def ledger_rows() -> int:
    from gateway.models import UsageRecord

    return UsageRecord.objects.count()


def summarize(doc: dict, label: str, ledger: int, through_gateway: int) -> tuple[str, str]:
    by_c = {row["concurrency"]: row for row in doc["summary"]}
    rss_peak = max([r.get("gw_rss_mb_peak") or 0 for r in doc["summary"]] + [0])
    parts = []
    for c, row in sorted(by_c.items()):
        parts.append(f"c{c}: ratio={row['throughput_ratio']:.3f} +ttft_p50={row['added_ttft_ms_p50']}ms "
                     f"gw_cpu={row.get('gw_cpu_ms_per_request')}ms/req "
                     f"gw={row['gateway']['requests_per_s']}req/s direct={row['direct']['requests_per_s']}req/s "
                     f"errors={row['gateway']['errors_total']} usage_missing={row['gateway']['usage_missing_total']}")
    line = (f"RESULT {label} " + "; ".join(parts) + f"; rss_peak={rss_peak}MB; ledger_rows={ledger} "
            f"(timed gateway requests incl. redone pairs {through_gateway}; warm-ups come on top)")
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    foreign = max(max(r["direct"]["foreign_cpu_pct_max"], r["gateway"]["foreign_cpu_pct_max"]) for r in by_c.values())
    numbers = "; ".join(
        f"C={c}: {r['direct']['requests_per_s']}→{r['gateway']['requests_per_s']} req/s, +TTFT p50 "
        f"{r['added_ttft_ms_p50']} ms, gateway CPU {r.get('gw_cpu_ms_per_request')} ms/stream, errors "
        f"{r['gateway']['errors_total']}" for c, r in sorted(by_c.items()))
    md = (f"| {date} | gateway ({label.split('-')[-1]}) | {os.cpu_count()} CPU {doc['meta'].get('cpu', '')}, Python "
          f"{platform.python_version()}; other processes up to {foreign}% of a core | {numbers}; RSS peak {rss_peak} "
          f"MB; {ledger} ledger rows | ratio " + " / ".join(f"{by_c[c]['throughput_ratio']:.3f}" for c in sorted(by_c))
          + " at C=" + "/".join(str(c) for c in sorted(by_c)) + " (target >= 0.5 at C=128) |")
    return line, md


if __name__ == "__main__":
    sys.exit(main())
