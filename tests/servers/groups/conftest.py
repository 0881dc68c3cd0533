"""Two node workers on this machine: real Celery worker processes `lead` and `follow`, sharing the test's database
and Redis, each with its own var folder and engine settings, their engines bound to 127.0.0.2 and 127.0.0.3."""
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.utils import timezone

from accounts import services as account_services
from models_registry.models import ModelProfile, NodeWeights
from nodes.models import Node
from servers import processes, supervisor
from servers.groups import services as groups
from servers.models import Server, ServerGroup
from servers.tasks import server_reconcile_task
from sparkportal.celery import enqueue_on_node
from tests.conftest import BASE_DIR, subprocess_env
from tests.servers.conftest import FAKE_VLLM, FAKES

REPO = "Qwen/Qwen3-0.6B"
ADDRESSES = {"lead": "127.0.0.2", "follow": "127.0.0.3"}
# How long a follower tries to reach its leader before the group fails: short here, the fake starts in seconds.
PREFLIGHT_S = "12"


def make_node(name: str, **fields) -> Node:
    defaults = {"queue": f"node.{name}", "vllm_executable": FAKE_VLLM, "memory_budget": 0.85, "stop_timeout_s": 5,
                "extra_env": {"PYTHONPATH": str(FAKES / "site")}, "network_interface": "lo",
                "host_ip": ADDRESSES.get(name, "127.0.0.4"), "last_heartbeat_at": timezone.now(),
                "host_facts": {"engines": {"vllm": {"found": True, "executable": FAKE_VLLM, "version": "0.33.0"}}}}
    defaults.update(fields)
    node, _ = Node.objects.update_or_create(name=name, defaults=defaults)
    NodeWeights.objects.update_or_create(node=node, defaults={"repos": [{"repo_id": REPO}],
                                                              "scanned_at": timezone.now()})
    return node


class NodeWorker:
    """`celery worker -Q node.<name>` in its own process, as on its own host."""

    def __init__(self, name: str, var_dir):
        self.name = name
        var_dir.mkdir(parents=True, exist_ok=True)
        env = subprocess_env(PORTAL_NODE_NAME=name, PORTAL_VAR_DIR=str(var_dir), PORTAL_LOG_DIR=str(var_dir / "logs"),
                             PORTAL_ENGINE_HOST=ADDRESSES.get(name, "127.0.0.1"), PORTAL_HEALTH_POLL_S="0.2",
                             PORTAL_GROUP_PREFLIGHT_TIMEOUT_S=PREFLIGHT_S, PORTAL_RESTART_BACKOFF_S="0.5",
                             PORTAL_SERVER_START_TIMEOUT_S="90")
        self.log_path = var_dir / "worker.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - open for the worker's lifetime
        self.log_from = self.log.tell()  # a restarted worker appends to its node's log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sparkportal", "worker", "-Q", f"node.{name}", "-c", "4", "-P",
             "threads", "-n", f"{name}@%h", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
             "--without-mingle"], cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> "NodeWorker":
        """Until the worker consumes its queue, as a node's worker does before anyone asks it anything: a task sent
        earlier waits for the worker's start, and one with a short expiry (a preflight's) would expire unseen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_from)
                if b" ready." in fh.read():
                    return self
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name} not ready within {timeout:g} s: "
                             f"{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.log.closed:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def two_nodes(transactional_db, tmp_path):
    """Nodes lead and follow, each with its own real worker; a worker may be restarted with `restart(name)`."""
    nodes = {name: make_node(name) for name in ADDRESSES}
    workers = {name: NodeWorker(name, tmp_path / name) for name in ADDRESSES}
    for worker in workers.values():
        worker.wait_ready()

    class Pair:
        lead, follow = nodes["lead"], nodes["follow"]
        var = tmp_path

        @staticmethod
        def stop(name: str) -> None:
            workers[name].stop()

        @staticmethod
        def restart(name: str) -> None:
            workers[name].stop()
            workers[name] = NodeWorker(name, tmp_path / name).wait_ready()

    yield Pair
    for group in ServerGroup.objects.filter(status__in=ServerGroup.LIVE):
        ServerGroup.objects.filter(pk=group.pk).update(status=ServerGroup.Status.STOPPED)
    for worker in workers.values():
        worker.stop()


@pytest.fixture
def group_profile(db):
    def make(name: str = "big", **fields) -> ModelProfile:
        defaults = {"repo_id": REPO, "served_model_name": name, "gpu_memory_utilization": 0.3, "max_model_len": 4096,
                    "pipeline_parallel_size": 2, "node_count": 2,
                    "extra_env": {"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_RENDEZVOUS_TIMEOUT_S": "20"}}
        defaults.update(fields)
        return ModelProfile.objects.create(name=name, **defaults)

    return make


def wait_for(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {(what() if callable(what) else what) or check}")


def group_state(group: ServerGroup) -> tuple[str, list[str]]:
    group.refresh_from_db()
    return group.status, [s.status for s in Server.objects.filter(group=group).order_by("rank")]


def kill_rank(server: Server, node: Node, *, whole_group: bool = True) -> None:
    """SIGKILL a rank's process (its process group with `whole_group`), wait until it is really gone, then ask its
    node to reconcile. A killed engine takes a moment to exit: a reconcile that looked before then saw it alive, and
    in a test no periodic reconcile (beat) comes later to look again."""
    (os.killpg if whole_group else os.kill)(server.pid, signal.SIGKILL)
    wait_for(lambda: not processes.alive(server.pid, server.pid_started_at), 10, f"pid {server.pid} to exit")
    enqueue_on_node(server_reconcile_task, node, node.name)


def marked_pids() -> list[int]:
    return processes.marked(instance=supervisor.instance_id())


def chat_through_gateway(url: str, user, model: str) -> dict:
    """One chat completion for `model` through the portal's gateway with a fresh key of `user`; its answer."""
    _key, raw = account_services.api_key_create(owner=user, name="t")
    answer = httpx.post(f"{url}/v1/chat/completions", json={"model": model, "max_tokens": 3,
                                                             "messages": [{"role": "user", "content": "hi"}]},
                        headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stop_whole(group: ServerGroup, user) -> None:
    """Stop a two-rank group and wait until both ranks stopped and no marked process is left."""
    groups.group_stop(user=user, group=group)
    wait_for(lambda: group_state(group) == (ServerGroup.Status.STOPPED, ["stopped", "stopped"]), 60,
             "the group to stop")
    assert marked_pids() == []
