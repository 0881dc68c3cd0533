"""Fixtures for the supervisor: a node whose vLLM is the stand-in, profiles, and a leak check."""
import os
import random
import time
from pathlib import Path

import pytest
from django.conf import settings

from models_registry.models import ModelProfile
from nodes.models import Node
from servers import processes, supervisor
from servers.models import Server
from sparkportal.celery import node_queue

FAKES = Path(__file__).resolve().parents[1] / "fakes"
FAKE_VLLM = str(FAKES / "bin" / "vllm")
FAKE_TEI = str(FAKES / "bin" / "text-embeddings-router")


@pytest.fixture(scope="session", autouse=True)
def engine_log_dir(tmp_path_factory):
    """Server ids restart at 1 with every test database: keep this run's engine logs apart."""
    path = tmp_path_factory.mktemp("engine-logs")
    os.environ["PORTAL_LOG_DIR"] = str(path)  # for daphne and other subprocesses
    settings.PORTAL_LOG_DIR = path
    # Other test runs on the same host start engines too: propose ports from a range of this run's own.
    first = random.Random(os.getpid()).randrange(20000, 29900, 100)
    settings.PORTAL_ENGINE_PORT_FIRST, settings.PORTAL_ENGINE_PORT_LAST = first, first + 99
    os.environ["PORTAL_ENGINE_PORT_FIRST"], os.environ["PORTAL_ENGINE_PORT_LAST"] = str(first), str(first + 99)
    return path


@pytest.fixture
def node(db):
    node, _ = Node.objects.update_or_create(name=settings.NODE_NAME, defaults={
        "queue": node_queue(settings.NODE_NAME), "vllm_executable": FAKE_VLLM, "tei_executable": FAKE_TEI,
        "memory_budget": 0.85,
        "stop_timeout_s": 5, "extra_env": {"PYTHONPATH": str(FAKES / "site")},
        "ld_library_path_prefix": "/opt/cuda/lib64"})
    return node


@pytest.fixture
def make_profile(db):
    def make(name: str = "qwen-small", **fields) -> ModelProfile:
        defaults = {"repo_id": "Qwen/Qwen3-0.6B", "served_model_name": name, "gpu_memory_utilization": 0.3,
                    "max_model_len": 4096, "extra_env": {"FAKE_VLLM_STARTUP_DELAY_S": "0.1"}}
        defaults.update(fields)
        return ModelProfile.objects.create(name=name, **defaults)

    return make


@pytest.fixture(autouse=True)
def no_engine_left_behind(request):
    """Every test must leave no process carrying this portal's marker; kill and fail if one does."""
    yield
    if "db" not in request.fixturenames and "transactional_db" not in request.fixturenames:
        return
    try:
        instance = supervisor.instance_id()
    except Exception:  # noqa: BLE001 - no database in this test
        return
    deadline = time.monotonic() + 3
    left = processes.marked(instance=instance)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes.marked(instance=instance)
    if left:
        processes.kill_pids(left)
        pytest.fail(f"processes left behind by the test: {left}")


def wait_status(server: Server, *statuses: str, timeout: float = 20.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if server.status in statuses:
            return server
        time.sleep(0.05)
    raise AssertionError(f"server #{server.pk} stayed {server.status} ({server.status_reason}), wanted {statuses}")


def engine_pids(server: Server) -> list[int]:
    return processes.marked(instance=supervisor.instance_id(), server_id=server.pk)
