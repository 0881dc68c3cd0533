"""Short commands on this host (GPU and engine probes): the nodes app's one boundary to OS processes.

Always an argv list, never a shell; a missing executable answers like a shell would instead of raising.
"""
import os
import shutil
import subprocess
from pathlib import Path


def run_capture(argv: list[str], *, timeout: float = 10.0, env: dict | None = None) -> tuple[int, str, str]:
    """Run a short command and return (returncode, stdout, stderr); 127 when it is missing, 124 on timeout."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (FileNotFoundError, PermissionError):
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {timeout:.0f} s"
    return proc.returncode, proc.stdout, proc.stderr


def executable_found(executable: str) -> bool:
    if not executable:
        return False
    if os.path.isabs(executable):
        return os.access(executable, os.X_OK)
    return shutil.which(executable) is not None


def interpreter_of(executable: str) -> str | None:
    """The Python that runs a console script: its venv sibling `python`, else its shebang's."""
    path = Path(executable)
    if not path.is_absolute():
        found = shutil.which(executable)
        if not found:
            return None
        path = Path(found)
    sibling = path.parent / "python"
    if sibling.exists():
        return str(sibling)
    try:
        first = path.open("rb").readline().decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if parts and os.path.basename(parts[0]) == "env" and len(parts) > 1:
        return shutil.which(parts[1])
    return parts[0] if parts else None
