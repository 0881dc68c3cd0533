"""Shared fixtures: users in each role, a real Celery worker, a real daphne, a browser."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from sparkportal.runner import web_argv
from tests.factories import UserFactory

BASE_DIR = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def admin_user(db):
    return UserFactory(username="alice", role="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def operator_user(db):
    return UserFactory(username="oscar", role="operator")


@pytest.fixture
def member_user(db):
    return UserFactory(username="mia", role="member")


@pytest.fixture
def stranger(db):
    return UserFactory(username="sam", role="member")


def database_url() -> str:
    """The URL of the database this test run uses (the test database), for subprocesses."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict:
    env = os.environ.copy()
    env.update({"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                "PORTAL_VAR_DIR": str(settings.VAR_DIR), "SECRET_KEY": settings.SECRET_KEY,
                "PORTAL_NODE_NAME": settings.NODE_NAME, "DATABASE_CONN_MAX_AGE": "0"})
    env.update(extra)
    return env


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (in a thread of this process) on `default` and this node's queue."""
    from celery.contrib.testing.worker import start_worker

    from sparkportal.celery import app, node_queue

    with start_worker(app, queues=["default", node_queue(settings.NODE_NAME)], perform_ping_check=False,
                      pool="threads", concurrency=4, shutdown_timeout=20) as worker:
        yield worker


class AsgiServer:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"


def start_daphne(env: dict) -> AsgiServer:
    port = free_port()
    proc = subprocess.Popen(web_argv("127.0.0.1", port), cwd=BASE_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return AsgiServer(proc, port)
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("daphne did not start within 30 s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


@pytest.fixture
def asgi_server(transactional_db):
    """A real daphne serving the portal against this test's database and Redis."""
    server = start_daphne(subprocess_env())
    yield server
    stop_process(server.proc)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required for browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; Django would then refuse ORM calls
    # from the test body, which are plain synchronous code here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        yield chromium
        # While Playwright's event loop runs on this thread, Django keys its connection by async context,
        # not by thread: the ORM calls of the test body used a connection of their own. Close it here,
        # or it stays open until the end of the run and the test database cannot be dropped.
        from django.db import connections

        connections.close_all()
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(15000)
    pg = context.new_page()
    yield pg
    context.close()


def login(page, server: AsgiServer, username: str, password: str = "pw-Secret-123") -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
