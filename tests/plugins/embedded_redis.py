"""Before Django settings load: with no REDIS_URL, start a throwaway embedded Redis for this run.

It runs on a free port so that several test runs (and a running portal) never share state.
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
    if os.environ.get("REDIS_URL"):
        return
    from sparkportal.lib import embedded_redis, procs

    port = free_port()
    proc = embedded_redis.start(port=port, data_dir=Path(tempfile.mkdtemp(prefix="portal-redis-")), persist=False)
    atexit.register(procs.stop_group, proc, timeout=5)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
