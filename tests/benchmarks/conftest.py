"""Stand-ins the benchmark tests share: the scripted upstream and the fake `vllm serve`."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
FAKE_VLLM = str(ROOT / "tests" / "fakes" / "bin" / "vllm")


class Proc:
    def __init__(self, argv: list[str], env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.close()
        raise AssertionError(f"{argv[:3]} did not become healthy")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def scripted_upstream():
    """40 ms to the first token, then one token every 8 ms."""
    proc = Proc([sys.executable, "-m", "tests.fakes.openai_upstream", "--port", "{port}", "--ttft-ms", "40",
                 "--itl-ms", "8"])
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def fake_vllm_server():
    proc = Proc([FAKE_VLLM, "serve", "Qwen/Qwen3-8B", "--port", "{port}", "--served-model-name", "qwen3-8b"],
                env={"FAKE_VLLM_STARTUP_DELAY_S": "0", "FAKE_VLLM_TTFT_S": "0.02", "FAKE_VLLM_TOKEN_DELAY_S": "0.002",
                     "SPT_NOENV": "1"})
    yield proc
    proc.close()


FAKES = ROOT / "tests" / "fakes"


@pytest.fixture(scope="session", autouse=True)
def engine_log_dir(tmp_path_factory):
    """Server ids restart with every test database: keep this run's engine logs apart."""
    from django.conf import settings

    path = tmp_path_factory.mktemp("bench-engine-logs")
    os.environ["PORTAL_LOG_DIR"] = str(path)
    settings.PORTAL_LOG_DIR = path
    return path


@pytest.fixture
def bench_node(transactional_db, tmp_path):
    """This host's node, its vLLM being the stand-in (serve and bench serve)."""
    from django.conf import settings

    from nodes.models import Node
    from sparkportal.celery import node_queue

    node, _ = Node.objects.update_or_create(name=settings.NODE_NAME, defaults={
        "queue": node_queue(settings.NODE_NAME), "vllm_executable": FAKE_VLLM, "memory_budget": 0.9,
        "stop_timeout_s": 5, "extra_env": {"PYTHONPATH": str(FAKES / "site")}})
    return node


@pytest.fixture
def bench_profile(transactional_db):
    from models_registry.models import ModelProfile

    def make(name: str, **fields):
        defaults = {"repo_id": f"Qwen/{name}", "served_model_name": name, "gpu_memory_utilization": 0.2,
                    "max_model_len": 4096, "dtype": "bfloat16",
                    "extra_env": {"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_TTFT_S": "0.005",
                                  "FAKE_VLLM_TOKEN_DELAY_S": "0.001"}}
        defaults.update(fields)
        return ModelProfile.objects.create(name=name, **defaults)

    return make


def wait_for(predicate, *, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; {state()}")


def state() -> str:
    """Runs, summaries, repeats and servers as they stand: what a timeout message needs."""
    from benchmarks.models import BenchmarkResult, BenchmarkRun, BenchmarkSummary
    from servers.models import Server

    return "; ".join([
        *(f"run {r.pk} {r.status} {r.message!r} {r.progress}" for r in BenchmarkRun.objects.all()),
        *(f"summary {s.profile_name} {s.status} {s.message!r}" for s in BenchmarkSummary.objects.all()),
        *(f"repeat {r.repeat} {r.status} {r.message!r}" for r in BenchmarkResult.objects.all()),
        *(f"server {s.pk} {s.status} {s.status_reason!r}" for s in Server.objects.all())])


def marked_processes() -> list[int]:
    """Processes carrying this portal's engine marker (what a stopped server must not leave)."""
    from servers import processes, supervisor

    return processes.marked(instance=supervisor.instance_id())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed benchmark test shows the runs, repeats and servers as they stood."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        try:
            report.sections.append(("benchmark state", state().replace("; ", "\n")))
        except Exception as exc:  # noqa: BLE001 - no database in this test
            report.sections.append(("benchmark state", f"unavailable: {exc}"))


@pytest.fixture(autouse=True)
def engine_ports(settings):
    """Engine ports of this test run apart from other runs on the same host (parallel checkouts)."""
    base = 20000 + (os.getpid() % 400) * 50
    settings.PORTAL_ENGINE_PORT_FIRST, settings.PORTAL_ENGINE_PORT_LAST = base, base + 49


def start_worker_process(log: Path, **env: str) -> subprocess.Popen:
    """A real worker in its own process (default + this node's queue), to be killed like a crashed host.
    Its output goes to `log` (a pipe nobody reads would block it)."""
    from django.conf import settings

    from tests.conftest import subprocess_env

    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q",
             f"default,node.{settings.NODE_NAME}", "-c", "2", "--loglevel", "WARNING", "--without-heartbeat",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=subprocess_env(PORTAL_ENGINE_PORT_FIRST=str(settings.PORTAL_ENGINE_PORT_FIRST),
                                         PORTAL_ENGINE_PORT_LAST=str(settings.PORTAL_ENGINE_PORT_LAST), **env),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
