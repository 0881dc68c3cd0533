"""What every benchmark sets up the same way: free ports, a scratch portal (its own var folder, SQLite and an
embedded Redis unless DATABASE_URL/REDIS_URL are given) and the dated rows appended to perf/RESULTS.md."""
from __future__ import annotations

import atexit
import os
import socket
import sys
import tempfile
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RESULTS = BASE / "perf" / "RESULTS.md"
if str(BASE) not in sys.path:
    sys.path.insert(0, str(BASE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scratch_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"perf-{name}-"))


def start_redis(var_dir: Path) -> tuple[str, object]:
    """An embedded Redis that keeps nothing, stopped when this process exits: (its URL, its process)."""
    from sparkportal.lib import embedded_redis, procs

    port = free_port()
    proc = embedded_redis.start(port=port, data_dir=var_dir / "redis", persist=False)
    atexit.register(procs.stop_group, proc, timeout=5)
    return f"redis://127.0.0.1:{port}/0", proc


def scratch_env(var_dir: Path, *, name: str, own_redis: bool = False) -> dict:
    """The environment of a scratch portal in var_dir; Redis is started here unless REDIS_URL is set (or own_redis
    asks for one anyway, so a benchmark never shares keys with a running portal)."""
    env = {"PORTAL_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "sparkportal.settings",
           "SECRET_KEY": os.environ.get("SECRET_KEY", f"perf-{name}-not-secret"),
           "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"), "PORTAL_NODE_NAME": "perf"}
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'portal.sqlite3'}"
    env["REDIS_URL"] = os.environ.get("REDIS_URL", "") if not own_redis else ""
    if not env["REDIS_URL"]:
        env["REDIS_URL"], _ = start_redis(var_dir)
    return env


def setup_django(var_dir: Path, *, name: str, own_redis: bool = False, migrate: bool = True) -> dict:
    """Configure this process as the scratch portal and migrate its database; returns the environment set."""
    env = scratch_env(var_dir, name=name, own_redis=own_redis)
    os.environ.update(env)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return env


def record(row: str) -> None:
    """Append a table row (or any text) to perf/RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(row.rstrip("\n") + "\n")
