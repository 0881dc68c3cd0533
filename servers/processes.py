"""The boundary to OS processes of this host. No other module imports subprocess."""
import subprocess


def run_capture(argv: list[str], *, timeout: float = 10.0, env: dict | None = None) -> tuple[int, str, str]:
    """Run a short command (argv list, never a shell) and return (returncode, stdout, stderr).

    A missing executable returns 127, like a shell would, instead of raising.
    """
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {timeout:.0f} s"
    return proc.returncode, proc.stdout, proc.stderr


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
