"""`make run`: set up, then supervise Redis (embedded unless REDIS_URL), a Celery worker for
`default` + this node's queue, Celery beat and daphne. One Ctrl-C or SIGTERM stops them all."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable


def log(msg: str) -> None:
    print(f"[portal] {msg}", flush=True)


class Supervisor:
    def __init__(self) -> None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
        import django

        django.setup()
        from django.conf import settings

        self.settings = settings
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False

    def manage(self, *args: str) -> None:
        subprocess.run([PY, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR)

    def start(self, name: str, argv: list[str]) -> None:
        from sparkportal.lib import procs

        log_dir = self.settings.VAR_DIR / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        proc = procs.spawn(argv, env=os.environ.copy(), log_path=None)
        self.children.append((name, proc))
        log(f"started {name} (pid {proc.pid})")

    def embedded_redis(self) -> None:
        from sparkportal.lib import embedded_redis

        port = self.settings.EMBEDDED_REDIS_PORT
        proc = embedded_redis.start(port=port, data_dir=self.settings.VAR_DIR / "redis",
                                    log_path=str(self.settings.VAR_DIR / "logs" / "redis.log"))
        self.children.append(("redis", proc))
        os.environ["REDIS_URL"] = self.settings.REDIS_URL
        log(f"started embedded Redis on 127.0.0.1:{port} (pid {proc.pid})")

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
            self.manage("ensure_admin")
            if self.stopping:
                return self.shutdown()
            node = s.NODE_NAME
            self.start("worker", [PY, "-m", "celery", "-A", "sparkportal", "worker", "-Q", f"default,node.{node}",
                                  "-n", f"{node}@%h", "--loglevel", "INFO",
                                  "--concurrency", str(s.PORTAL_WORKER_CONCURRENCY)])
            self.start("beat", [PY, "-m", "celery", "-A", "sparkportal", "beat", "--loglevel", "INFO",
                                "-s", str(s.VAR_DIR / "celerybeat-schedule"), "--pidfile="])
            self.start("web", [PY, "-m", "daphne", "-b", s.PORTAL_BIND, "-p", str(s.PORTAL_PORT),
                               "sparkportal.asgi:application"])
            log(f"portal on http://{s.PORTAL_BIND}:{s.PORTAL_PORT}/ (Ctrl-C stops everything)")
            return self.watch()
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            log(f"start-up failed: {exc}")
            self.shutdown()
            return 1

    def watch(self) -> int:
        while not self.stopping:
            for name, proc in self.children:
                if proc.poll() is not None:
                    log(f"{name} exited with code {proc.returncode}; stopping the rest")
                    self.shutdown()
                    return 1
            time.sleep(0.5)
        return self.shutdown()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def shutdown(self) -> int:
        from sparkportal.lib import procs

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, proc in reversed(self.children):
            log(f"stopping {name}")
            procs.stop_group(proc, timeout=25 if name == "worker" else 10)
        self.children.clear()
        log("stopped")
        return 0


def main() -> None:
    sys.exit(Supervisor().run())


if __name__ == "__main__":
    main()
