"""Start `make run` in its own process group, wait for /api/health = 200, stop it with one
SIGINT (what Ctrl-C sends) and fail if any process it started is still alive."""
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

port = os.environ.get("PORTAL_PORT", "8000")
url = f"http://127.0.0.1:{port}/api/health"
proc = subprocess.Popen(["make", "run"], start_new_session=True)
seen: dict[int, str] = {}


def collect() -> None:
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                seen[child.pid] = " ".join(child.cmdline())[:120]
            except psutil.Error:
                pass
    except psutil.NoSuchProcess:
        pass


healthy = False
deadline = time.monotonic() + 240
while time.monotonic() < deadline and proc.poll() is None:
    collect()
    try:
        response = httpx.get(url, timeout=5)
        if response.status_code == 200:
            healthy = True
            print(f"[bootcheck] healthy: {response.text}")
            break
    except httpx.TransportError:
        pass
    time.sleep(1)
collect()
os.killpg(proc.pid, signal.SIGINT)
try:
    proc.wait(60)
except subprocess.TimeoutExpired:
    print("[bootcheck] make run did not exit within 60 s of Ctrl-C")
    healthy = False
time.sleep(1)
left = {pid: cmd for pid, cmd in seen.items() if psutil.pid_exists(pid)
        and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
for pid, cmd in left.items():
    print(f"[bootcheck] left behind: {pid} {cmd}")
    os.kill(pid, signal.SIGKILL)
print(f"[bootcheck] processes seen: {len(seen)}, left behind: {len(left)}, healthy: {healthy}")
sys.exit(0 if healthy and not left else 1)
