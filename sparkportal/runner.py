"""`make run`: set up, then supervise Redis (embedded unless REDIS_URL), a Celery worker for
`default` + this node's queue, Celery beat and daphne. One Ctrl-C or SIGTERM stops them all.

A child that dies is started again after a back-off (0.5 s, doubling to 30 s), as systemd's
`Restart=on-failure` does: a worker killed by the kernel's OOM killer must not take the web, beat and
Redis down with it. Only a crash loop (5 restarts of one child within 60 s, systemd's start limit)
stops the portal, naming the child and how it last ended.
"""
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable
NOTICE_DELAY_S = 6.0  # the worker, beat and daphne have printed their start-up lines by then

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_WINDOW_S = 60.0


# Twisted listens with a backlog of 50: a burst of clients (200 requests fired at once at the gateway) overflows
# the accept queue, and the kernel drops connections the clients believe open. The kernel caps it at somaxconn.
LISTEN_BACKLOG = 1024


def web_argv(bind: str, port: int, *options: str) -> list[str]:
    """daphne serving the portal on bind:port (options: daphne's own, such as `-v 0`)."""
    from daphne.endpoints import build_endpoint_description_strings

    [endpoint] = build_endpoint_description_strings(host=bind, port=port)  # what `-b HOST -p PORT` would listen on
    return [PY, "-m", "daphne", *options, "-e", f"{endpoint}:backlog={LISTEN_BACKLOG}", "sparkportal.asgi:application"]


def log(msg: str) -> None:
    print(f"[portal] {msg}", flush=True)


def backoff(recent_restarts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** recent_restarts)


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "failed to start"
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    name: str
    launch: Callable[[], subprocess.Popen]
    stop_timeout: float = 10.0
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)  # monotonic times of the recent restarts
    restart_at: float | None = None
    last_end: str = ""


class CrashLoop(Exception):
    pass


class Supervisor:
    def __init__(self) -> None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
        import django

        django.setup()
        from django.conf import settings

        self.settings = settings
        self.children: list[Child] = []
        self.stopping = False
        self.notice = ""

    def manage(self, *args: str) -> None:
        subprocess.run([PY, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR)

    def manage_output(self, *args: str) -> str:
        return subprocess.run([PY, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR,
                              stdout=subprocess.PIPE, text=True).stdout.strip()

    def start(self, name: str, argv: list[str], *, stop_timeout: float = 10.0) -> None:
        from sparkportal.lib import procs

        self.add(Child(name, lambda: procs.spawn(argv, env=os.environ.copy(), log_path=None), stop_timeout))

    def add(self, child: Child) -> None:
        child.proc = child.launch()
        self.children.append(child)
        log(f"started {child.name} (pid {child.proc.pid})")

    def embedded_redis(self) -> None:
        from sparkportal.lib import embedded_redis

        port = self.settings.EMBEDDED_REDIS_PORT
        launch = lambda: embedded_redis.start(  # noqa: E731
            port=port, data_dir=self.settings.VAR_DIR / "redis",
            log_path=str(self.settings.VAR_DIR / "logs" / "redis.log"))
        self.add(Child("redis", launch))
        os.environ["REDIS_URL"] = self.settings.REDIS_URL
        log(f"embedded Redis on 127.0.0.1:{port}")

    def run(self) -> int:
        from sparkportal.lib import procs

        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        # `make run` is usually our parent: a SIGTERM to make must stop everything too.
        procs.die_with_parent()
        s = self.settings
        (s.VAR_DIR / "logs").mkdir(parents=True, exist_ok=True)
        try:
            if not os.environ.get("REDIS_URL"):
                self.embedded_redis()
            self.manage("migrate", "--noinput", "-v", "0")
            self.manage("collectstatic", "--noinput", "-v", "0")
            # Printed once the others' start-up lines are out, or a generated password scrolls away.
            self.notice = self.manage_output("ensure_admin")
            if self.stopping:
                return self.shutdown()
            node = s.NODE_NAME
            self.start("worker", [PY, "-m", "celery", "-A", "sparkportal", "worker", "-Q", f"default,node.{node}",
                                  "-n", f"{node}@%h", "--loglevel", "INFO",
                                  "--concurrency", str(s.PORTAL_WORKER_CONCURRENCY)], stop_timeout=25)
            self.start("beat", [PY, "-m", "celery", "-A", "sparkportal", "beat", "--loglevel", "INFO",
                                "-s", str(s.VAR_DIR / "celerybeat-schedule"), "--pidfile="])
            self.start("web", web_argv(s.PORTAL_BIND, s.PORTAL_PORT))
            log(f"portal on http://{s.PORTAL_BIND}:{s.PORTAL_PORT}/ (Ctrl-C stops everything)")
            return self.watch()
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            log(f"start-up failed: {exc}")
            self.shutdown()
            return 1

    def watch(self) -> int:
        notice_at = time.monotonic() + NOTICE_DELAY_S
        while not self.stopping:
            if self.notice and time.monotonic() >= notice_at:
                print(f"\n{self.notice}\n", flush=True)
                self.notice = ""
            try:
                for child in self.children:
                    self.tend(child, time.monotonic())
            except CrashLoop as exc:
                log(str(exc))
                self.shutdown()
                return 1
            time.sleep(0.2)
        return self.shutdown()

    def tend(self, child: Child, now: float) -> None:
        """Notice a child that ended and schedule its restart; start it again when its back-off is over."""
        if child.restart_at is not None:
            if now >= child.restart_at:
                self.restart(child, now)
            return
        if child.proc is not None and child.proc.poll() is None:
            return
        self.ended(child, now)

    def ended(self, child: Child, now: float) -> None:
        from sparkportal.lib import procs

        pid = child.proc.pid if child.proc else None
        if child.proc is not None:
            child.last_end = how_it_ended(child.proc.returncode)
            procs.stop_group(child.proc, timeout=5)  # what the child left in its group (pool processes)
        child.restarts = [t for t in child.restarts if now - t < CRASH_LOOP_WINDOW_S]
        if len(child.restarts) >= CRASH_LOOP_RESTARTS:
            raise CrashLoop(f"{child.name} {child.last_end} after {len(child.restarts)} restarts within "
                            f"{CRASH_LOOP_WINDOW_S:g} s: a crash loop, so the portal stops (see its output above)")
        delay = backoff(len(child.restarts))
        child.restart_at = now + delay
        log(f"{child.name} (pid {pid}) {child.last_end}; restarting it in {delay:g} s")

    def restart(self, child: Child, now: float) -> None:
        child.restart_at = None
        child.restarts.append(now)
        try:
            child.proc = child.launch()
        except (RuntimeError, OSError) as exc:
            child.proc = None
            child.last_end = f"did not start again ({exc})"
            self.ended(child, now)
            return
        log(f"started {child.name} again (pid {child.proc.pid})")

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def shutdown(self) -> int:
        from sparkportal.lib import procs

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(self.children):
            if child.proc is not None:
                log(f"stopping {child.name}")
                procs.stop_group(child.proc, timeout=child.stop_timeout)
        self.children.clear()
        log("stopped")
        return 0


def main() -> None:
    sys.exit(Supervisor().run())


if __name__ == "__main__":
    main()
