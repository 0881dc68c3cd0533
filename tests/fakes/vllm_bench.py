"""A stand-in for `vllm bench serve` (vLLM 0.33.0, or 0.26.0 with FAKE_VLLM_VERSION) for machines without a GPU
or tokenizer.

Run through `tests/fakes/bin/vllm bench serve [flags]`. It follows the shared vLLM reference
(README section 3, bench_serve_result*.json, bench_serve_stdout*.txt, vllm_bench_serve_help_all.txt):

- parses every real flag (benchmarks/vllm_bench_flags.json); an unknown flag exits 2 with
  argparse's message under the program name `vllm bench serve`;
- prints the Namespace line, the sampling INFO line, the temperature WARNING when --temperature is
  not given, the start lines and the `Serving Benchmark Result` table, rows formatted as the tool
  does (`{:<40} {:<10}` / `{:<40} {:<10.2f}`);
- really sends the requests to --base-url/--endpoint (or http://host:port): `--num-warmups` untimed
  ones, then --num-prompts streaming requests in vLLM's payload shape, at --request-rate
  (inf = all at once, else gamma gaps with --burstiness) capped by --max-concurrency;
- times them the tool's way (TTFT at the first chunk with `choices`, ITL between such chunks,
  latency at the last one, output tokens from the `usage` chunk) and with --save-result writes
  one line of JSON with exactly the real keys in the real order (detailed keys only with
  --save-detailed) to --result-dir/--result-filename or the tool's default name.

Environment knobs:
FAKE_VLLM_VERSION       below 0.33, the real 0.26.0's result file: no latencies/queue_times without --save-detailed
FAKE_VLLM_BENCH_SCRIPT  path of a JSON list; each run pops its first entry and behaves so:
                        "ok", "truncate" (result file cut in the middle), "malformed" (not JSON),
                        "empty" (zero bytes), "missing-keys" (no TTFT figures), "no-file" (writes none),
                        "exit-1" (fails before sending anything)
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import math
import os
import random
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

from tests.fakes.vllm_serve import AS_026


def _next_behaviour() -> str:
    path = os.environ.get("FAKE_VLLM_BENCH_SCRIPT")
    if not path or not Path(path).exists():
        return "ok"
    with open(path, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        steps = json.loads(fh.read() or "[]")
        step = steps.pop(0) if steps else "ok"
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(steps))
    return step


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def _std(values: list[float]) -> float:
    if not values:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


class Out:
    def __init__(self, prompt_len: int):
        self.success = False
        self.prompt_len = prompt_len
        self.output_tokens = 0
        self.ttft = 0.0
        self.itl: list[float] = []
        self.latency = 0.0
        self.start = 0.0
        self.queue = 0.0
        self.text = ""
        self.error = ""


async def _request(session, url: str, payload: dict, headers: dict, out: Out, chat: bool) -> Out:
    st = time.perf_counter()
    out.start = st
    last = st
    first = False
    text = []
    try:
        async with session.post(url, json=payload, headers=headers) as resp:
            if resp.status != 200:
                out.error = resp.reason or ""
                return out
            pending = b""
            async for chunk in resp.content.iter_any():
                pending += chunk
                while b"\n\n" in pending:
                    message, pending = pending.split(b"\n\n", 1)
                    message = message.strip()
                    if not message:
                        continue
                    data = message.decode().removeprefix("data: ")
                    if data == "[DONE]":
                        continue
                    body = json.loads(data)
                    if choices := body.get("choices"):
                        now = time.perf_counter()
                        if not first:
                            first = True
                            out.ttft = now - st
                        else:
                            out.itl.append(now - last)
                        last = now
                        text.append((choices[0].get("delta") or {}).get("content") or "" if chat
                                    else choices[0].get("text") or "")
                    elif usage := body.get("usage"):
                        out.output_tokens = usage.get("completion_tokens") or 0
    except Exception as exc:  # noqa: BLE001 - the tool records any failure as the request's error
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    out.text = "".join(text)
    if first:
        out.success = True
        out.output_tokens = out.output_tokens or len(out.itl) + 1
    else:
        out.error = "Never received a valid chunk to calculate TTFT. This response will be marked as failed!"
    out.latency = last - st
    return out


def _row(label: str, value, fmt: str = "") -> str:
    return f"{label:<40} {value:<10{fmt}}"


def _print_table(args, result: dict, metrics: list[str], percentiles: list[float]) -> None:
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print(_row("Successful requests:", result["completed"]))
    print(_row("Failed requests:", result["failed"]))
    if args.max_concurrency is not None:
        print(_row("Maximum request concurrency:", args.max_concurrency))
    if args.request_rate != float("inf"):
        print(_row("Request rate configured (RPS):", args.request_rate, ".2f"))
    print(_row("Benchmark duration (s):", result["duration"], ".2f"))
    print(_row("Total input tokens:", result["total_input_tokens"]))
    print(_row("Total generated tokens:", result["total_output_tokens"]))
    print(_row("Request throughput (req/s):", result["request_throughput"], ".2f"))
    print(_row("Output token throughput (tok/s):", result["output_throughput"], ".2f"))
    print(_row("Peak output token throughput (tok/s):", result["max_output_tokens_per_s"], ".2f"))
    print(_row("Peak concurrent requests:", float(result["max_concurrent_requests"]), ".2f"))
    print(_row("Total token throughput (tok/s):", result["total_token_throughput"], ".2f"))
    titles = {"ttft": ("Time to First Token", "TTFT"), "tpot": ("Time per Output Token (excl. 1st token)", "TPOT"),
              "itl": ("Inter-token Latency", "ITL"), "e2el": ("End-to-end Latency", "E2EL")}
    for m in metrics:
        header, short = titles[m]
        print("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        print(_row(f"Mean {short} (ms):", result[f"mean_{m}_ms"], ".2f"))
        print(_row(f"Median {short} (ms):", result[f"median_{m}_ms"], ".2f"))
        for p in percentiles:
            name = str(int(p)) if p.is_integer() else str(p)
            print(_row(f"P{name} {short} (ms):", result[f"p{name}_{m}_ms"], ".2f"))
    print("=" * 50)


def _peaks(outs: list[Out]) -> tuple[float, int]:
    ok = [o for o in outs if o.success]
    if not ok:
        return 0.0, 0
    t0 = min(o.start for o in ok)
    n = int(math.ceil(max(o.start + o.latency for o in ok) - t0)) + 1
    tokens, running = [0] * n, [0] * n
    for o in ok:
        t = o.start + o.ttft
        stamps = [t]
        for gap in o.itl:
            t += gap
            stamps.append(t)
        for s in stamps:
            if 0 <= int(s - t0) < n:
                tokens[int(s - t0)] += 1
        for sec in range(int(o.start - t0), int(o.start + o.latency - t0) + 1):
            running[sec] += 1
    return float(max(tokens)), int(max(running))


async def _run(args, base: str, model_id: str, served: str) -> tuple[list[Out], float]:
    chat = args.backend == "openai-chat"
    url = base + args.endpoint
    input_len = args.random_input_len if args.input_len is None else args.input_len
    output_len = args.random_output_len if args.output_len is None else args.output_len
    rng = random.Random(args.seed or 0)
    words = ["alpha", "beta", "gamma", "delta", "kv", "cache", "token", "block", "tensor", "engine"]
    prompts = [" ".join(rng.choice(words) for _ in range(input_len)) for _ in range(args.num_prompts)]
    headers = {"User-Agent": "Benchmark-Client"}
    if os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"

    def payload(prompt: str) -> dict:
        body = {"model": served, "max_tokens": output_len, "logprobs": args.logprobs, "stream": True,
                "stream_options": {"include_usage": True}, "repetition_penalty": 1.0,
                "ignore_eos": args.ignore_eos or args.dataset_name == "random"}
        if chat:
            body["messages"] = [{"role": "user", "content": prompt}]
            body["max_completion_tokens"] = body.pop("max_tokens")
        else:
            body["prompt"] = prompt
        if args.temperature is not None:
            body["temperature"] = args.temperature
        return body

    prefix = args.request_id_prefix or f"bench-{uuid.uuid4().hex[:8]}-"
    limit = args.max_concurrency or 0
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=6 * 3600)) as session:
        if args.num_warmups:
            print(f"Warming up with {args.num_warmups} benchmark requests...")
            await asyncio.gather(*[_request(session, url, payload(prompts[i % len(prompts)]),
                                            {**headers, "x-request-id": f"{prefix}warmup-{i}"},
                                            Out(input_len), chat) for i in range(args.num_warmups)])
            print("Warmup run completed.")
        print("Starting main benchmark run...")
        print(f"Traffic request rate: {args.request_rate}")
        print(f"Burstiness factor: {args.burstiness} "
              f"({'Poisson process' if args.burstiness == 1.0 else 'Gamma distribution'})")
        print(f"Maximum request concurrency: {args.max_concurrency}")
        sem = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None

        async def one(i: int) -> Out:
            out = Out(input_len)
            q = time.perf_counter()
            if sem:
                await sem.acquire()
            out.queue = time.perf_counter() - q
            try:
                return await _request(session, url, payload(prompts[i]), {**headers, "x-request-id": f"{prefix}{i}"},
                                      out, chat)
            finally:
                if sem:
                    sem.release()

        t0 = time.perf_counter()
        tasks = []
        for i in range(args.num_prompts):
            if args.request_rate != float("inf") and i:
                await asyncio.sleep(rng.gammavariate(args.burstiness, 1 / (args.request_rate * args.burstiness)))
            tasks.append(asyncio.create_task(one(i)))
        outs = await asyncio.gather(*tasks)
        return list(outs), time.perf_counter() - t0


def _result(args, outs: list[Out], duration: float, model_id: str, tokenizer_id: str,
            metrics: list[str], percentiles: list[float]) -> dict:
    ok = [o for o in outs if o.success]
    series = {"ttft": [o.ttft for o in ok],
              "tpot": [(o.latency - o.ttft) / (o.output_tokens - 1) for o in ok if o.output_tokens > 1],
              "itl": [g for o in ok for g in o.itl], "e2el": [o.latency for o in ok]}
    tin, tout = sum(o.prompt_len for o in ok), sum(o.output_tokens for o in ok)
    rate = "inf" if args.request_rate == float("inf") else args.request_rate
    r: dict = {"date": datetime.now().strftime("%Y%m%d-%H%M%S"), "endpoint_type": args.backend,
               "backend": args.backend, "label": args.label, "model_id": model_id, "tokenizer_id": tokenizer_id,
               "num_prompts": args.num_prompts}
    for item in args.metadata or []:
        key, _, value = item.partition("=")
        r[key] = value
    r.update({"request_rate": rate, "burstiness": args.burstiness, "max_concurrency": args.max_concurrency,
              "duration": duration, "completed": len(ok), "failed": len(outs) - len(ok),
              "total_input_tokens": tin, "total_output_tokens": tout, "request_throughput": len(ok) / duration,
              "request_goodput": None, "output_throughput": tout / duration,
              "total_token_throughput": (tin + tout) / duration})
    if args.save_detailed:
        r.update({"input_lens": [o.prompt_len for o in outs], "output_lens": [o.output_tokens for o in outs],
                  "ttfts": [o.ttft for o in outs], "itls": [o.itl for o in outs]})
    # 0.33 keeps these two without --save-detailed (shared reference); the real 0.26.0 wrote them only with it.
    if args.save_detailed or not AS_026:
        r["latencies"] = [o.latency for o in outs]
    if args.save_detailed:
        r["start_times"] = [o.start for o in outs]
    if args.save_detailed or not AS_026:
        r["queue_times"] = [o.queue for o in outs]
    if args.save_detailed:
        r.update({"generated_texts": [o.text for o in outs], "errors": [o.error for o in outs]})
    peak_tokens, peak_running = _peaks(outs)
    r.update({"max_output_tokens_per_s": peak_tokens, "max_concurrent_requests": peak_running, "rtfx": 0.0})
    for m in metrics:
        v = series[m]
        r[f"mean_{m}_ms"] = (sum(v) / len(v) if v else 0.0) * 1000
        r[f"median_{m}_ms"] = _pct(v, 50) * 1000
        r[f"std_{m}_ms"] = _std(v) * 1000
        for p in percentiles:
            name = str(int(p)) if p.is_integer() else str(p)
            r[f"p{name}_{m}_ms"] = _pct(v, p) * 1000
    return r


def _write(args, result: dict, behaviour: str) -> None:
    if not args.save_result or behaviour == "no-file":
        return
    rate = "inf" if args.request_rate == float("inf") else args.request_rate
    name = args.result_filename or (
        f"{args.label or args.backend}-{rate}qps"
        f"{f'-concurrency{args.max_concurrency}' if args.max_concurrency else ''}"
        f"-{os.path.basename(result['model_id'])}-{result['date']}.json")
    path = Path(args.result_dir or ".") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result)
    if behaviour == "truncate":
        text = text[: len(text) // 2]
    elif behaviour == "malformed":
        text = "Traceback (most recent call last):\n  oops, not json"
    elif behaviour == "empty":
        text = ""
    elif behaviour == "missing-keys":
        text = json.dumps({k: v for k, v in result.items() if "ttft" not in k})
    with open(path, "a" if args.append_result and path.exists() else "w") as fh:
        if args.append_result and fh.tell():
            fh.write("\n")
        fh.write(text)


def main(argv: list[str]) -> int:
    from engines.bench_cli import build_parser

    args = build_parser(prog="vllm bench serve").parse_args(argv)
    behaviour = _next_behaviour()
    print(f"Namespace(subparser='bench', bench_type='serve', {', '.join(f'{k}={v!r}' for k, v in vars(args).items())})")
    if behaviour == "exit-1":
        print("RuntimeError: fake failure before the benchmark", file=sys.stderr)
        return 1
    base = (args.base_url or f"http://{args.host or '127.0.0.1'}:{args.port or 8000}").rstrip("/")
    model_id = args.model
    if model_id is None:
        import urllib.request

        with urllib.request.urlopen(f"{base}/v1/models", timeout=10) as resp:
            model_id = json.loads(resp.read())["data"][0]["id"]
    served = args.served_model_name or model_id
    input_len = args.random_input_len if args.input_len is None else args.input_len
    output_len = args.random_output_len if args.output_len is None else args.output_len
    print(f"(MainProcess pid={os.getpid()}) INFO {time.strftime('%m-%d %H:%M:%S')} [utils.py:88] "
          f"Sampling input_len from [{input_len}, {input_len}] and output_len from [{output_len}, {output_len}]")
    if args.temperature is None:
        print("WARNING: vllm bench serve no longer sets temperature==0 (greedy) in requests by default. The default "
              "will be determined on the server side and can be model/API specific. For the old behavior, include "
              "--temperature=0.")
    print("Starting initial single prompt test run...")
    print("Skipping endpoint ready check.")
    metrics = (args.percentile_metrics or "ttft,tpot,itl").split(",")
    percentiles = [float(p) for p in str(args.metric_percentiles).split(",")]
    outs, duration = asyncio.run(_run(args, base, model_id, served))
    print("tip: install termplotlib and gnuplot to plot the metrics")
    failed = [o for o in outs if not o.success]
    if failed:
        print("Failed requests during benchmark run detected (capping to 10):")
        for i, o in enumerate(failed[:10]):
            print(f"Error {i}: {o.error}")
    result = _result(args, outs, duration, model_id, args.tokenizer or model_id, metrics, percentiles)
    _print_table(args, result, metrics, percentiles)
    _write(args, result, behaviour)
    sys.stdout.flush()
    return 0
