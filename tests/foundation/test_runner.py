"""`make run`'s supervisor (sparkportal.runner), run for real: a child that dies is started again after
a back-off, the rest keeps running; SIGTERM leaves no process; a crash loop stops everything, naming
the child."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import BASE_DIR, free_port, subprocess_env


class Runner:
    def __init__(self, env: dict, log: Path):
        self.log = log
        self.port = env["PORTAL_PORT"]
        self.seen: set[int] = set()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "sparkportal.runner"], cwd=BASE_DIR, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.collect()
            if match := re.search(pattern, self.output()):
                return match
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the runner's output:\n{self.output()[-4000:]}")

    def collect(self) -> None:
        try:
            self.seen.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass

    def web_answers(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=10).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        return False

    def left_behind(self) -> list[str]:
        left = []
        for pid in self.seen:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{pid} {' '.join(process.cmdline())[:100]}")
            except psutil.NoSuchProcess:
                pass
        return left

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.seen:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def runner_env(transactional_db, tmp_path):
    env = subprocess_env(PORTAL_PORT=str(free_port()), PORTAL_EMBEDDED_REDIS_PORT=str(free_port()),
                         PORTAL_VAR_DIR=str(tmp_path / "var"), PORTAL_WORKER_CONCURRENCY="1")
    env.pop("REDIS_URL")  # the runner's own embedded Redis, a child it supervises too
    return env


def alive(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_a_killed_child_comes_back_and_sigterm_leaves_nothing(runner_env, tmp_path):
    runner = Runner(runner_env, tmp_path / "runner.log")
    try:
        runner.wait_for(r"portal on http")
        pids = {name: int(runner.wait_for(rf"started {name} \(pid (\d+)\)").group(1))
                for name in ("worker", "beat", "web")}
        pids["redis"] = int(runner.wait_for(r"started (?:embedded )?[Rr]edis[^\n]*\(pid (\d+)\)").group(1))
        assert runner.web_answers()

        os.kill(pids["worker"], signal.SIGKILL)
        runner.wait_for(rf"worker \(pid {pids['worker']}\) was killed by SIGKILL; restarting it in 0.5 s")
        new_worker = int(runner.wait_for(r"started worker again \(pid (\d+)\)").group(1))
        assert new_worker != pids["worker"] and alive(new_worker)
        assert all(alive(pids[name]) for name in ("redis", "beat", "web"))
        assert runner.web_answers()

        os.kill(pids["redis"], signal.SIGKILL)
        runner.wait_for(r"started redis again \(pid (\d+)\)")
        assert alive(pids["web"]) and runner.web_answers()

        runner.collect()
        runner.proc.send_signal(signal.SIGTERM)
        assert runner.proc.wait(90) == 0
        assert "[portal] stopped" in runner.output()
        time.sleep(0.5)
        assert runner.left_behind() == []
    finally:
        runner.close()


def test_a_crash_loop_stops_the_portal_and_names_the_child(runner_env, tmp_path):
    with socket.socket() as taken:  # daphne cannot listen: it exits at once, every time
        taken.bind(("127.0.0.1", int(runner_env["PORTAL_PORT"])))
        taken.listen()
        runner = Runner(runner_env, tmp_path / "runner.log")
        try:
            assert runner.proc.wait(150) == 1
            output = runner.output()
            assert re.search(r"web exited with code 1 after 5 restarts within 60 s: a crash loop", output), \
                output[-4000:]
            assert output.count("started web again") == 5
            time.sleep(0.5)
            assert runner.left_behind() == []
        finally:
            runner.close()
