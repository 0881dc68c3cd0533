"""Before Django settings load: with no REDIS_URL, start a throwaway embedded Redis for this run.

It runs on a free port so that several test runs (and a running portal) never share state. Under
pytest-xdist the controller starts it and each worker takes its own database number of it (and its own
engine port range); the test database gets the worker's suffix from pytest-django.
"""
import atexit
import os
import socket
import tempfile
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    os.environ.setdefault("PORTAL_TEST_DB", f"test-{os.getpid()}.sqlite3")
    # Worker threads and daphne must not hold connections open: the test database is dropped at the end.
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # a parallel worker: the controller's Redis, a database and an engine port range of its own
        _separate_worker(int(worker.removeprefix("gw")))
        return
    if os.environ.get("REDIS_URL"):
        return
    from sparkportal.lib import embedded_redis, procs

    port = free_port()
    proc = embedded_redis.start(port=port, data_dir=Path(tempfile.mkdtemp(prefix="portal-redis-")), persist=False)
    atexit.register(procs.stop_group, proc, timeout=5)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def _separate_worker(n: int) -> None:
    """Parallel workers share the run's Redis server but never its keys, never write the same server log, and never
    pick the same engine or rendezvous port (groups of two workers would otherwise meet on 127.0.0.2's first
    master port)."""
    base, _, db = os.environ["REDIS_URL"].rpartition("/")
    os.environ["REDIS_URL"] = f"{base}/{int(db or 0) + n}"
    first = int(os.environ.get("PORTAL_ENGINE_PORT_FIRST", "8100")) + 100 * n
    os.environ["PORTAL_ENGINE_PORT_FIRST"] = str(first)
    os.environ["PORTAL_ENGINE_PORT_LAST"] = str(first + 99)
    # Each worker's test database numbers its servers from 1: their log files (server-<id>.log) must not meet.
    var = Path(os.environ.get("PORTAL_VAR_DIR") or Path(__file__).resolve().parents[2] / "var")
    os.environ["PORTAL_LOG_DIR"] = str(Path(os.environ.get("PORTAL_LOG_DIR") or var / "logs") / f"gw{n}")
    master = int(os.environ.get("PORTAL_GROUP_MASTER_PORT_FIRST", "29501")) + 100 * n
    os.environ["PORTAL_GROUP_MASTER_PORT_FIRST"] = str(master)
    os.environ["PORTAL_GROUP_MASTER_PORT_LAST"] = str(master + 98)
