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
