"""The boundary to OS processes of this host. No other module imports subprocess.

Engines are started detached (own session, so own process group) with an explicit environment
that carries an ownership marker; they are found again later through /proc (psutil), never by
name alone: another server's engine must survive our sweeps.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from engines.environment import INSTANCE, MARKER


def run_watched(argv: list[str], *, env: dict, log_path: str, timeout: float,
                should_stop, poll_s: float = 0.5) -> tuple[int, bool]:
    """Run a long command in its own session, output to `log_path`; returns (returncode, stopped).

    `should_stop()` is asked every `poll_s`: when it says yes (a cancelled benchmark) or the timeout
    passes, the whole process group gets SIGTERM, then SIGKILL after 5 s. A missing executable
    returns 127 like a shell.
    """
    import os
    import signal
    import time

    with open(log_path, "ab") as out:
        try:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            out.write(f"{argv[0]}: not found\n".encode())
            return 127, False
        except PermissionError:
            out.write(f"{argv[0]}: permission denied\n".encode())
            return 126, False
    deadline = time.monotonic() + timeout
    stopped = False
    while proc.poll() is None:
        try:
            proc.wait(poll_s)
            break
        except subprocess.TimeoutExpired:
            pass
        if should_stop() or time.monotonic() > deadline:
            stopped = True
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
    return proc.wait(), stopped


@dataclass
class Spawned:
    pid: int
    started_at: float


def spawn_detached(argv: list[str], *, env: dict, log_path: Path, cwd: str | None = None) -> Spawned:
    """Start argv in its own session with stdout+stderr appended to log_path.

    The child is not our child for long: we never wait() on it from here (a Celery worker
    restart must not take it down), so it is reaped by init once the worker is gone; while
    the worker lives, `reap()` collects its exit status.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=cwd)
    return Spawned(pid=proc.pid, started_at=started_at(proc.pid) or time.time())


def started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def reap(pid: int) -> None:
    """Collect a finished child of this process so it doesn't linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int | None, started: float | None = None) -> bool:
    """True when pid runs and, if given, started at `started` (a reused pid is not ours)."""
    if not pid:
        return False
    reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group made only of zombies (our unreaped children) counts as gone.
    return any(p.status() != psutil.STATUS_ZOMBIE for p in _group_members(pgid))


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_pid(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pgid)
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    reap(pgid)
    return not group_alive(pgid)


def _environ(proc: psutil.Process) -> dict:
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return {}


def marked(*, instance: str, server_id: int | None = None) -> list[int]:
    """Pids carrying this portal's marker (for one server, or for any)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        env = _environ(proc)
        if env.get(INSTANCE) != instance or MARKER not in env:
            continue
        if server_id is None or env.get(MARKER) == str(server_id):
            found.append(proc.pid)
    return found


def marked_by_server(*, instance: str) -> dict[int, list[int]]:
    """{server id: [pids]} for every process that carries this portal's marker."""
    out: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["pid"]):
        env = _environ(proc)
        if env.get(INSTANCE) == instance and env.get(MARKER, "").isdigit():
            out.setdefault(int(env[MARKER]), []).append(proc.pid)
    return out


def kill_pids(pids: list[int], *, grace: float = 2.0) -> int:
    """SIGTERM each, wait up to `grace`, SIGKILL the rest. Returns how many were signalled."""
    sent = [pid for pid in pids if signal_pid(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in sent):
        time.sleep(0.05)
    for pid in sent:
        if alive(pid):
            signal_pid(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(alive(pid) for pid in sent):
        time.sleep(0.02)
    return len(sent)


@dataclass
class EngineProcess:
    pid: int
    started_at: float
    argv: list[str]
    env: dict
    title: str


def engine_processes() -> list[EngineProcess]:
    """vLLM API servers and TEI routers running on this host, found by their command line.

    An engine's title stays its command line (only EngineCore/workers get `VLLM::` titles), so
    `vllm serve`, the deprecated `-m vllm.entrypoints.openai.api_server` and
    `text-embeddings-router` identify the servers; their children are not listed.
    """
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        argv = proc.info.get("cmdline") or []
        if not is_engine_cmdline(argv):
            continue
        found.append(EngineProcess(pid=proc.pid, started_at=proc.info["create_time"], argv=list(argv),
                                   env=_environ(proc), title=" ".join(argv)))
    return found


def is_engine_cmdline(argv: list[str]) -> bool:
    names = [os.path.basename(a) for a in argv[:3]]
    for index, name in enumerate(names):
        if name == "vllm" and argv[index + 1:index + 2] == ["serve"]:
            return True
        if name == "text-embeddings-router":
            return True
    return "vllm.entrypoints.openai.api_server" in argv[:4]


def descendants(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def port_taken(host: str, port: int) -> bool:
    """True when something on this host listens on (or holds) the TCP port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0" if host in ("", "0.0.0.0") else host, port))
        except OSError:
            return True
    return False
