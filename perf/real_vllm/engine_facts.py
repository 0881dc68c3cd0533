#!/usr/bin/env python3
"""Interface facts of a real `vllm serve`, recorded raw for the stand-ins in tests/fakes/ to follow.

No portal here: the engine alone, so that what it answers is what the portal must expect.

  1. cached prompt tokens: `--enable-prompt-tokens-details`, the same long prompt twice (chat, chat
     streamed with usage, completions): the `usage` objects verbatim and the prefix-cache counters
     of `/metrics` before and after;
  2. saturation: more concurrent requests than `--max-num-seqs`: the engine queues them itself
     (`vllm:num_requests_waiting`), no refusal;
  3. multi-node launch: a follower (`--nnodes 2 --node-rank 1 --headless`) whose leader is absent,
     and a leader whose follower never comes: what each prints and whether it exits, within a bound.

Environment: RV_VLLM, RV_SITE, RV_MODEL, OUT. Results to $OUT/facts.json and $OUT/facts-*.log.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

OUT = Path(os.environ.get("OUT") or "/tmp/rv-out")
OUT.mkdir(parents=True, exist_ok=True)
VLLM = os.environ.get("RV_VLLM", "vllm")
MODEL = os.environ.get("RV_MODEL", "/tmp/models/tiny")
F: dict = {}
PROMPT = " ".join(f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(40))


def save() -> None:
    (OUT / "facts.json").write_text(json.dumps(F, indent=1, default=str))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ)
    # the flashinfer wheel is not carried and vLLM's sampler imports it unguarded
    e.update({"PYTHONPATH": os.environ.get("RV_SITE", ""), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
              "VLLM_USE_FLASHINFER_SAMPLER": "0"})
    return e


def spawn(name: str, args: list[str]) -> subprocess.Popen:
    with open(OUT / f"facts-{name}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([VLLM, "serve", MODEL, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env(), start_new_session=True)


def end(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def prefix_counters(base: str) -> dict:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    keep = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_requests_waiting",
            "vllm:num_requests_running", "vllm:prompt_tokens_cached", "vllm:prompt_tokens_total")
    return {line.split("{")[0].split(" ")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(keep)}


def cached_tokens(base: str) -> None:
    chat = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": PROMPT}]}
    F["metrics_before"] = prefix_counters(base)
    F["chat"] = [httpx.post(f"{base}/v1/chat/completions", json=chat, timeout=60).json()["usage"] for _ in range(2)]
    F["metrics_after_chat"] = prefix_counters(base)
    streamed = []
    for _ in range(2):
        body = dict(chat, stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "Streamed. " + PROMPT}])
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as r:
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: {")]
        streamed.append([json.loads(ln[6:]).get("usage") for ln in lines][-2:])
    F["chat_stream_last_two_chunks_usage"] = streamed
    comp = {"model": "tiny", "max_tokens": 4, "prompt": "Completion. " + PROMPT}
    F["completions"] = [httpx.post(f"{base}/v1/completions", json=comp, timeout=60).json()["usage"]
                        for _ in range(2)]
    F["metrics_after_all"] = prefix_counters(base)
    save()


def saturation(base: str) -> None:
    body = {"model": "tiny", "max_tokens": 256, "ignore_eos": True, "messages": [{"role": "user", "content": "go"}]}
    with cf.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(httpx.post, f"{base}/v1/chat/completions", json=body, timeout=120) for _ in range(16)]
        time.sleep(0.3)
        F["saturation_metrics_mid"] = prefix_counters(base)
        F["saturation_statuses"] = sorted(f.result().status_code for f in futures)
    save()


def engine() -> None:
    port = free_port()
    proc = spawn("engine", ["--port", str(port), "--served-model-name", "tiny", "--enable-prompt-tokens-details",
                            "--max-num-seqs", "4", "--gpu-memory-utilization", "0.3", "--enforce-eager"])
    base = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    try:
        while time.monotonic() - began < 300:
            if proc.poll() is not None:
                F["engine_exit"] = proc.returncode
                return
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        F["engine_ready_s"] = round(time.monotonic() - began, 1)
        cached_tokens(base)
        saturation(base)
    finally:
        F["engine_stop_rc"] = end(proc)
        save()


def watch(name: str, args: list[str], bound: float) -> None:
    began = time.monotonic()
    proc = spawn(name, args)
    while time.monotonic() - began < bound and proc.poll() is None:
        time.sleep(0.5)
    F[name] = {"exited": proc.poll() is not None, "rc": proc.poll(), "seconds": round(time.monotonic() - began, 1)}
    end(proc)
    F[name]["tail"] = (OUT / f"facts-{name}.log").read_text(errors="replace").splitlines()[-25:]
    save()


def multinode() -> None:
    master = str(free_port())
    common = ["--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", master,
              "--pipeline-parallel-size", "2", "--gpu-memory-utilization", "0.2", "--enforce-eager"]
    watch("follower_without_leader", [*common, "--node-rank", "1", "--headless"], 90)
    watch("leader_without_follower", [*common, "--node-rank", "0", "--port", str(free_port())], 90)


if __name__ == "__main__":
    parts = os.environ.get("RV_FACTS", "engine,multinode").split(",")
    for part in (engine, multinode):
        if part.__name__ not in parts:
            continue
        try:
            part()
        except Exception as exc:  # one part's failure must not lose the others' facts
            F.setdefault("errors", []).append(f"{part.__name__}: {exc!r}")
            save()
    print(json.dumps(F, indent=1, default=str)[:6000])
