"""Replicas of one model on two nodes behind the gateway: the least loaded ready replica across every gateway
process gets each request, and a node whose heartbeat stops gets none while the other lives."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts import services as account_services
from nodes.tasks import node_heartbeat_task
from servers import lifecycle
from servers.models import Server
from sparkportal.celery import enqueue_on_node
from tests.conftest import start_daphne, stop_process, subprocess_env
from tests.gateway.conftest import FakeVllm
from tests.servers.conftest import wait_status
from tests.servers.groups.conftest import marked_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
STALE_S = 4.0


class Beat:
    """What beat does: each node's heartbeat on its own queue, every second, for the nodes still listed."""

    def __init__(self, nodes):
        self.nodes, self.done = list(nodes), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(1.0):
            for node in list(self.nodes):
                enqueue_on_node(node_heartbeat_task, node, node.name, expires=5)

    def stop(self):
        self.done.set()
        self.thread.join(5)


def served(server: Server) -> float:
    return FakeVllm.metric(type("E", (), {"url": server.base_url})(), "vllm:request_success")


@pytest.fixture
def gateways(transactional_db):
    """Two gateway processes (daphne), as behind a load balancer."""
    env = subprocess_env(PORTAL_NODE_STALE_S=str(STALE_S), PORTAL_GATEWAY_ROUTES_TTL_S="0.5")
    servers = [start_daphne(env), start_daphne(env)]
    yield servers
    for server in servers:
        stop_process(server.proc)


def test_replicas_on_two_nodes_share_load_and_a_silent_node_loses_its_traffic(two_nodes, make_profile,
                                                                              operator_user, gateways):
    profile = make_profile("rep", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1", "FAKE_VLLM_TTFT_S": "0.3"})
    beat = Beat([two_nodes.lead, two_nodes.follow])
    try:
        replicas = [lifecycle.server_start(user=operator_user, profile=profile, node=node)
                    for node in (two_nodes.lead, two_nodes.follow)]
        for replica in replicas:
            wait_status(replica, "ready", timeout=60)
        on_lead, on_follow = replicas
        assert (on_lead.host, on_follow.host) == ("127.0.0.2", "127.0.0.3")
        _key, raw = account_services.api_key_create(owner=operator_user, name="t")
        headers = {"Authorization": f"Bearer {raw}"}
        body = {"model": "rep", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        def ask(i):
            url = f"{gateways[i % 2].url}/v1/chat/completions"
            return httpx.post(url, json=body, headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(24))) == {200}
        lead_n, follow_n = served(on_lead), served(on_follow)
        # Eight at a time over two gateways: each replica took a fair share (least in flight across both).
        assert lead_n + follow_n == 24 and min(lead_n, follow_n) >= 8, (lead_n, follow_n)

        silent_at = last_change = time.monotonic()
        beat.nodes.remove(two_nodes.follow)
        two_nodes.stop("follow")  # the node's worker is gone; its engine still answers, unwatched
        count = served(on_follow)
        while time.monotonic() - last_change < STALE_S and time.monotonic() - silent_at < 30:
            assert ask(0) == 200 and ask(1) == 200
            now_count = served(on_follow)
            if now_count != count:
                count, last_change = now_count, time.monotonic()
        # Its last request came within the staleness limit (plus a routing refresh), then none.
        assert last_change - silent_at < STALE_S + 2, last_change - silent_at
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(16))) == {200}
        assert served(on_follow) == count
    finally:
        beat.stop()
        _stop_everything(two_nodes, operator_user)


def _stop_everything(two_nodes, operator_user):
    two_nodes.restart("follow")  # its engine is stopped by its own node's worker
    for server in Server.objects.filter(status="ready"):
        lifecycle.server_stop(user=operator_user, server=server)
    wait_for(lambda: not Server.objects.exclude(status__in=["stopped", "failed", "external"]).exists(), 60,
             lambda: f"every server down: {list(Server.objects.values_list('node__name', 'status', 'status_reason'))}")
    wait_for(lambda: marked_pids() == [], 20, "no engine left")
