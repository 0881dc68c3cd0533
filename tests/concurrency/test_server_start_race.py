"""Two start clicks at the same moment never produce two servers (row locks; PostgreSQL only)."""
import threading

import pytest
from django.db import connection, connections

from models_registry.models import ModelProfile
from nodes.models import Node
from servers import services
from servers.models import Server
from sparkportal.exceptions import ApplicationError

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="row locks need PostgreSQL (CI runs this on PostgreSQL); SQLite has none"),
]


def _race(n: int, call) -> list:
    """Run `call` in n threads released together; return each result or exception."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - the race's loser is the point of the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def _setup():
    node = Node.objects.create(name="race-node", queue="node.race-node", vllm_executable="/bin/true")
    profile = ModelProfile.objects.create(name="coder", repo_id="Qwen/Qwen3-0.6B", gpu_memory_utilization=0.3)
    return node, profile


def test_two_simultaneous_starts_of_a_profile_make_one_server(operator_user):
    node, profile = _setup()
    results = _race(4, lambda: services.server_start(user=operator_user, profile=profile, node=node))
    started = [r for r in results if isinstance(r, Server)]
    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert len(started) == 1, results
    assert len(refused) == 3 and all(r.code == "already_running" for r in refused)
    assert Server.objects.filter(profile=profile).count() == 1


def test_two_simultaneous_starts_of_a_stopped_server_queue_it_once(operator_user):
    node, profile = _setup()
    server = Server.objects.create(node=node, profile=profile, served_model_name="coder", port=8101,
                                   status="stopped", gpu_memory_utilization=0.3)
    results = _race(4, lambda: services.server_restart(user=operator_user, server=server))
    assert sum(isinstance(r, Server) for r in results) == 1, results
    assert server.events.filter(old="stopped", new="queued").count() == 1


def test_simultaneous_starts_never_exceed_the_budget(operator_user):
    node, _ = _setup()
    profiles = [ModelProfile.objects.create(name=f"m{i}", repo_id="Qwen/Qwen3-0.6B", gpu_memory_utilization=0.3)
                for i in range(4)]
    calls = iter(profiles)
    lock = threading.Lock()

    def start():
        with lock:
            profile = next(calls)
        return services.server_start(user=operator_user, profile=profile, node=node)

    results = _race(4, start)
    assert sum(isinstance(r, Server) for r in results) == 2  # 0.3 + 0.3 <= 0.85 < 0.9
    assert all(r.code == "over_budget" for r in results if isinstance(r, ApplicationError))
