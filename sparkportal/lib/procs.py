"""Start and stop the portal's own long-running processes (Redis, Celery, daphne).

Each child runs in its own session so that a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order; each child also gets SIGTERM if the
supervisor itself dies (PR_SET_PDEATHSIG), so nothing is left behind even after a SIGKILL.
"""
import ctypes
import os
import signal
import subprocess
import time

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux/glibc: the supervisor's own shutdown still covers the normal cases


def spawn(argv: list[str], *, env: dict | None = None, log_path: str | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True, preexec_fn=die_with_parent)
    finally:
        if out:
            out.close()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """SIGTERM the child's whole process group, wait, then SIGKILL whatever is left."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            if not group_alive(pgid):
                proc.poll()
                return
            time.sleep(0.1)
    proc.poll()
