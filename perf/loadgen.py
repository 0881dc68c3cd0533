"""The built-in load generator must not be the bottleneck, and must time what the server scripts.

1. Throughput: against a fast loopback upstream (tests/fakes/openai_upstream.py with no delays,
   16-token streams), the generator's achieved request rate at concurrency 128 vs a minimal aiohttp
   client (128 workers, POST and read the body; no SSE parsing, no timing) in the same run,
   interleaved rounds, medians. Both open their 128 connections before the clock starts.
   Target: ratio >= 0.8.
2. Accuracy: against the same upstream scripted to 200 ms to the first token (a 512-token prefill)
   and 20 ms per token, the generator's median TTFT and TPOT. Target: within 5% of the scripted
   values. The same at 50 ms TTFT is printed too: the loopback round trip and the upstream's timer
   granularity add a near-constant 1-3 ms, which weighs more on a short TTFT.

Usage: .venv/bin/python perf/loadgen.py [--requests 4000] [--rounds 3]
"""
import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import scratch

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

from benchmarks.loadgen import LoadSpec, run_load  # noqa: E402

CONCURRENCY = 128



def busy_share(interval: float = 0.5) -> float:
    """Share of all cores busy over `interval` (nothing of ours runs while this samples)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return sum(values) - values[3] - values[4], sum(values)
    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_quiet(*, limit: float = 0.25, max_wait: float = 60.0) -> float:
    """On a shared machine, start a round only when other processes leave the cores mostly idle."""
    deadline = time.monotonic() + max_wait
    share = busy_share()
    while share > limit and time.monotonic() < deadline:
        share = busy_share()
    return share


def start_upstream(*args: str) -> tuple[subprocess.Popen, str]:
    port = scratch.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_upstream", "--port", str(port), *args],
                            cwd=BASE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("upstream did not start")


async def reference_client(url: str, total: int) -> float:
    """The least a client can do: C workers, each POSTs and reads the whole body."""
    payload = {"model": "stub-model", "prompt": "hello " * 16, "max_tokens": 16, "stream": True,
               "stream_options": {"include_usage": True}}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = CONCURRENCY

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(f"{url}/v1/completions", json=payload) as response:
                    await response.read()
                    assert response.status == 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))  # warm-up: open the connections
        remaining = total
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return total / (time.perf_counter() - start)


async def ours(url: str, total: int) -> float:
    spec = LoadSpec(base_url=url, model="stub-model", num_prompts=total, input_len=16, output_len=16,
                    max_concurrency=CONCURRENCY, num_warmups=CONCURRENCY)  # warm-up opens the connections
    result = await run_load(spec)
    assert result["completed"] == total, result["errors"][:3]
    return result["request_throughput"]


def accuracy(ttft_ms: float, itl_ms: float) -> tuple[float, float]:
    proc, url = start_upstream("--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms))
    try:
        spec = LoadSpec(base_url=url, model="stub-model", num_prompts=64, input_len=32, output_len=16,
                        max_concurrency=8, num_warmups=8)
        result = asyncio.run(run_load(spec))
    finally:
        proc.kill()
        proc.wait()
    return result["median_ttft_ms"], result["median_tpot_ms"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    proc, url = start_upstream("--tokens", "16")
    rates: dict[str, list[float]] = {"ours": [], "reference": []}
    foreign: list[float] = []
    cpu_ms: dict[str, list[float]] = {"ours": [], "reference": []}
    try:
        for _ in range(args.rounds):
            for name, client in (("reference", reference_client), ("ours", ours)):
                foreign.append(wait_quiet())
                cpu = time.process_time()
                rates[name].append(asyncio.run(client(url, args.requests)))
                cpu_ms[name].append((time.process_time() - cpu) / args.requests * 1000)
    finally:
        proc.kill()
        proc.wait()
    ref, mine = statistics.median(rates["reference"]), statistics.median(rates["ours"])
    ratio = mine / ref
    foreign.append(wait_quiet())
    ttft, tpot = accuracy(200.0, 20.0)
    ttft_err, tpot_err = abs(ttft - 200.0) / 200.0 * 100, abs(tpot - 20.0) / 20.0 * 100
    foreign.append(wait_quiet())
    short_ttft, _short_tpot = accuracy(50.0, 20.0)
    numbers = (f"C=128 16-token streams: load generator {mine:.0f} req/s, minimal aiohttp client {ref:.0f} req/s "
               f"(medians of {args.rounds} interleaved rounds of {args.requests}), client CPU per request "
               f"{statistics.median(cpu_ms['ours']):.3f} vs {statistics.median(cpu_ms['reference']):.3f} ms "
               f"(ours includes computing the statistics); scripted 200 ms TTFT / 20 ms TPOT "
               f"measured {ttft:.2f} / {tpot:.2f} ms (error {ttft_err:.1f}% / {tpot_err:.1f}%, target <= 5%); "
               f"scripted 50 ms TTFT measured {short_ttft:.2f} ms (+{short_ttft - 50:.2f} ms); "
               f"other processes' CPU before rounds: max {max(foreign) * 100:.0f}% of the machine")
    line = f"loadgen: ratio {ratio:.3f} (target >= 0.8); {numbers}"
    print(line)
    machine = f"{os.cpu_count()} CPU {platform.machine()}, Python {platform.python_version()}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    scratch.record(f"| {stamp} | loadgen | {machine} | {numbers} | ratio {ratio:.3f} (target >= 0.8) |")


if __name__ == "__main__":
    main()
