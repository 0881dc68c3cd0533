"""Simultaneous wakes wake a sleeper once and never wake more than the node holds (row locks; PostgreSQL only)."""
import threading

import pytest
from django.db import connection

from models_registry.models import ModelProfile
from nodes.models import Node
from servers import services
from servers.models import Server
from sparkportal.exceptions import ApplicationError
from tests.concurrency.test_server_start_race import _race

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="row locks need PostgreSQL (CI runs this on PostgreSQL); SQLite has none"),
]
DISCRETE = [{"index": 0, "memory_total_gb": 80.0, "memory_used_gb": 1.0}]


def _each(items):
    """A call per thread, handed out one at a time (an iterator is not thread-safe)."""
    lock, pending = threading.Lock(), iter(items)

    def take():
        with lock:
            return next(pending)
    return take


def _sleeper(node: Node, name: str, port: int, *, status: str = "sleeping") -> Server:
    profile = ModelProfile.objects.create(name=name, repo_id="Qwen/Qwen3-0.6B", gpu_memory_utilization=0.5,
                                          enable_sleep_mode=True)
    return Server.objects.create(node=node, profile=profile, served_model_name=name, port=port, status=status,
                                 sleep_level=1 if status == "sleeping" else None, gpu_memory_utilization=0.5,
                                 argv=["vllm", "serve", name, "--enable-sleep-mode"])


@pytest.fixture
def node(db):
    return Node.objects.create(name="race-node", queue="node.race-node", vllm_executable="/bin/true",
                               gpu_facts=DISCRETE)


def test_simultaneous_first_requests_and_an_operator_wake_a_sleeper_once(node, operator_user):
    server = _sleeper(node, "dozy", 8101)
    calls = [lambda: services.server_ensure_ready(server_id=server.pk, user_id=operator_user.pk)] * 3 + [
        lambda: services.server_wake(user=operator_user, server=server)]
    take = _each(calls)
    results = _race(4, lambda: take()())
    assert all(isinstance(r, Server) or (isinstance(r, ApplicationError) and r.code == "invalid_transition")
               for r in results), results
    assert server.events.filter(old="sleeping", new="waking").count() == 1


def test_simultaneous_wakes_of_two_sleepers_never_exceed_the_budget(node, operator_user):
    sleepers = [_sleeper(node, "a", 8101), _sleeper(node, "b", 8102)]  # 0.5 each: one fits in 0.85
    take = _each(sleepers)
    results = _race(2, lambda: services.server_ensure_ready(server_id=take().pk))
    assert sum(isinstance(r, Server) for r in results) == 1, results
    assert [r.code for r in results if isinstance(r, ApplicationError)] == ["over_budget"]
    assert Server.objects.filter(node=node, status="waking").count() == 1


def test_two_simultaneous_swaps_admit_one(node, operator_user):
    awake, asleep = _sleeper(node, "awake", 8101, status="ready"), _sleeper(node, "asleep", 8102)
    results = _race(3, lambda: services.server_swap(user=operator_user, sleep=awake, wake=asleep, level=1))
    assert sum(isinstance(r, Server) for r in results) == 1, results
    assert awake.events.filter(old="ready", new="sleeping").count() == 1
    assert asleep.events.filter(old="sleeping", new="waking").count() == 1
