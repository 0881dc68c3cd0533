"""One daphne and a few fake vLLM servers for all gateway tests; each test commits its rows so daphne sees them."""
import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sparkportal.runner import web_argv
from tests.conftest import BASE_DIR, AsgiServer, free_port, stop_process, subprocess_env
from tests.factories import UserFactory

FAKE_VLLM = str(Path(__file__).resolve().parents[1] / "fakes" / "bin" / "vllm")
# How long daphne may trust a cached key without the generation saying so (accounts.revocation).
AUTH_CACHE_TTL_S = 5.0


class FakeVllm:
    def __init__(self, name: str, *args: str, env: dict | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([FAKE_VLLM, "serve", name, "--port", str(self.port), *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "SPT_NOENV": "1", "FAKE_VLLM_STARTUP_DELAY_S": "0",
                                          **(env or {})}, start_new_session=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"fake vLLM {self.name} exited"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"fake vLLM {self.name} did not become healthy")

    def metric(self, family: str, **labels) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for fam in text_string_to_metric_families(text):
            if fam.name != family:
                continue
            for s in fam.samples:
                if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class Portal:
    """The module's portal: daphne URL, the fakes, and DB access for the test body."""

    def __init__(self, blocker, fakes: dict[str, FakeVllm]):
        self.blocker = blocker
        self.fakes = fakes
        self.server = None
        self.servers = {}

    @property
    def url(self) -> str:
        return self.server.url

    def db(self):
        return self.blocker.unblock()

    def member(self, *, role: str = "member", scopes=None, **quota):
        """A fresh user with an API key (and a quota when limits are given); returns (user, raw key)."""
        from accounts import services

        with self.db():
            user = UserFactory(username=f"u{uuid.uuid4().hex[:10]}", role=role)
            if quota:
                services.quota_set(actor=user, user=user, **quota)
            _key, raw = services.api_key_create(owner=user, name="test", scopes=scopes)
        return user, raw

    def headers(self, raw: str) -> dict:
        return {"Authorization": f"Bearer {raw}"}

    def usage_rows(self, user, *, count: int, timeout: float = 10.0) -> list:
        """Wait for the background ledger writer to have written `count` rows of this user."""
        from gateway.models import UsageRecord

        deadline = time.monotonic() + timeout
        while True:
            with self.db():
                rows = list(UsageRecord.objects.filter(user=user).order_by("created_at", "id"))
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def _daphne(env: dict, log_dir: Path) -> AsgiServer:
    """Like tests.conftest.start_daphne, with stderr in a file: a long module must not fill a pipe."""
    port = free_port()
    log = open(log_dir / "daphne.log", "w")  # noqa: SIM115 - open for the process's whole life
    proc = subprocess.Popen(web_argv("127.0.0.1", port), cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (log_dir / "daphne.log").read_text()[-3000:]
        try:
            httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            server = AsgiServer(proc, port)
            server.log = log_dir / "daphne.log"
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("daphne did not start within 30 s")


# Short, so that a killed gateway process's slots come back within a test.
LEASE_S = 3.0


@pytest.fixture(scope="package")
def portal_processes(django_db_setup, tmp_path_factory):
    """The fakes and daphne, shared by all gateway tests (their rows are re-created per test)."""
    fakes = {
        "chat-model": FakeVllm("chat-model"),
        "slow-model": FakeVllm("slow-model", env={"FAKE_VLLM_TOKEN_DELAY_S": "0.05", "FAKE_VLLM_OUTPUT_TOKENS": "60"}),
        "embed-model": FakeVllm("embed-model", "--runner", "pooling"),
    }
    server = None
    try:
        for fake in fakes.values():
            fake.wait_ready()
        env = subprocess_env(PORTAL_USAGE_FLUSH_S="0.1", PORTAL_GATEWAY_ROUTES_TTL_S="0.5",
                             PORTAL_GATEWAY_KEEPALIVE_S="0.5", PORTAL_AUTH_CACHE_TTL_S=str(AUTH_CACHE_TTL_S),
                             PORTAL_GATEWAY_LEASE_S=str(LEASE_S))
        server = _daphne(env, tmp_path_factory.mktemp("daphne"))
        yield server, fakes
    finally:
        if server is not None:
            stop_process(server.proc)
        for fake in fakes.values():
            fake.close()


@pytest.fixture
def portal(portal_processes, django_db_blocker, transactional_db):
    """Test modules mark themselves django_db(transaction=True, reset_sequences=True): the rows below get
    the same ids in every test, so the routing table cached by the module's daphne stays right."""
    from django.conf import settings

    from nodes.models import Node
    from servers.models import Server

    server, fakes = portal_processes
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("portal:q:*", "portal:srv:*", "portal:fq:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    state = Portal(django_db_blocker, fakes)
    state.server = server
    node = Node.objects.create(name="gw", queue="node.gw")
    for name, fake in fakes.items():
        state.servers[name] = Server.objects.create(node=node, served_model_name=name, port=fake.port,
                                                    status=Server.Status.READY)
    state.servers["stopped-model"] = Server.objects.create(node=node, served_model_name="stopped-model", port=9,
                                                           status=Server.Status.STOPPED)
    state.node = node
    yield state
    time.sleep(0.3)  # let the ledger writer land this test's last rows before the tables are emptied


def concurrent_streams(url: str, raw: str, model: str, n: int) -> list[tuple[int, str]]:
    """n streamed chat requests for `model` at once: each one's status and whole body."""
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 3}

    async def one(client: httpx.AsyncClient) -> tuple[int, str]:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=payload,
                                 headers={"Authorization": f"Bearer {raw}"}) as response:
            return response.status_code, (await response.aread()).decode()

    async def run() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[one(client) for _ in range(n)])

    return asyncio.run(run())
