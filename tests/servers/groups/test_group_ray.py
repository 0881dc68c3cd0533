"""A model across two nodes on Ray: the portal runs `ray start` on each node through its queue, the leader's
`vllm serve --distributed-executor-backend ray` joins that cluster, and the group's lifecycle stays the same."""
import os
import random
import socket
import time

import psutil
import pytest

from engines import ray_cluster
from servers.groups import services as groups
from servers.models import Server, ServerGroup
from servers.tasks import server_reconcile_task
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import ValidationFailed
from tests.servers.conftest import FAKES
from tests.servers.groups.conftest import (
    chat_through_gateway,
    group_state,
    kill_rank,
    make_node,
    marked_pids,
    stop_whole,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)
G = ServerGroup.Status
FAKE_RAY = str(FAKES / "bin" / "ray")


@pytest.fixture(autouse=True)
def own_gcs_ports(settings):
    """Group tests of other runs on this host use 127.0.0.2:29501 and up: a follower must never meet their store."""
    first = random.Random(os.getpid()).randrange(31000, 39000, 100)
    settings.PORTAL_GROUP_MASTER_PORT_FIRST, settings.PORTAL_GROUP_MASTER_PORT_LAST = first, first + 99


def ray_processes(port: int) -> list[psutil.Process]:
    """This cluster's `ray start` processes and its GCS daemon (by the GCS port on their command lines)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if ("fakes/bin/ray start" in line or "tests.fakes.ray_gcs" in line) and str(port) in line:
            found.append(proc)
    return found


def environ(proc: psutil.Process) -> dict:
    try:
        return proc.environ()
    except psutil.NoSuchProcess:
        return {}


def start(two_nodes, group_profile, operator_user, **options) -> ServerGroup:
    profile = group_profile(distributed_backend="ray")
    return groups.group_start(user=operator_user, profile=profile, nodes=[two_nodes.lead, two_nodes.follow], **options)


def test_a_ray_group_starts_serves_and_stops_with_no_ray_process_left(two_nodes, group_profile, operator_user,
                                                                      asgi_server):
    group = start(two_nodes, group_profile, operator_user)
    wait_for(lambda: group_state(group) == (G.READY, ["ready", "ready"]), 90,
             lambda: f"the Ray group to be ready: {group_state(group)} {group.status_reason}")
    leader, follower = Server.objects.filter(group=group).order_by("rank")
    head = f"127.0.0.2:{group.master_port}"
    assert follower.argv == [FAKE_RAY, "start", "--address", head, "--node-ip-address", "127.0.0.3", "--num-gpus",
                             "1", "--block", "--disable-usage-stats"]
    assert leader.argv[leader.argv.index("--distributed-executor-backend") + 1] == "ray"
    assert "--nnodes" not in leader.argv and "--headless" not in leader.argv
    assert group.preflight["1"]["reaches"] is True  # the follower reached the head's GCS port

    # Every Ray process (the head, its GCS daemon, the worker node) and the engine carry the memory-monitor
    # setting, the rank's network and the server's marker; the GCS left the head's session, as Ray's services may.
    procs = ray_processes(group.master_port)
    names = sorted("gcs" if "ray_gcs" in " ".join(p.cmdline()) else "head" if "--head" in p.cmdline() else "worker"
                   for p in procs)
    assert names == ["gcs", "head", "worker"]
    engine = psutil.Process(leader.pid)
    for proc in [*procs, engine]:
        env = environ(proc)
        assert env["RAY_memory_monitor_refresh_ms"] == "0", proc.cmdline()
        assert env["SPARKPORTAL_SERVER_ID"] in (str(leader.pk), str(follower.pk))
        assert env["VLLM_HOST_IP"] in ("127.0.0.2", "127.0.0.3") and env["NCCL_SOCKET_IFNAME"] == "lo"
    assert environ(engine)["RAY_ADDRESS"] == head
    gcs = next(p for p in procs if "ray_gcs" in " ".join(p.cmdline()))
    head_proc = next(p for p in procs if "--head" in p.cmdline())
    assert os.getsid(gcs.pid) != os.getsid(head_proc.pid)

    assert chat_through_gateway(asgi_server.url, operator_user, "big")["model"] == "big"
    stop_whole(group, operator_user)
    assert ray_processes(group.master_port) == []


def test_a_dead_ray_worker_fails_the_group_stops_the_leader_and_on_failure_restarts_it(two_nodes, group_profile,
                                                                                      operator_user):
    group = start(two_nodes, group_profile, operator_user, restart_policy="on-failure")
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the Ray group to be ready")
    first = {s.rank: s.pid for s in Server.objects.filter(group=group)}
    kill_rank(Server.objects.get(group=group, rank=1), two_nodes.follow, whole_group=False)  # its Ray node dies
    wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")
    wait_for(lambda: all(s in ("stopped", "failed") for s in group_state(group)[1]), 30, "every rank down")
    group.refresh_from_db()
    # The follower's node finds its rank gone, or the leader's engine dies first with its lost Ray worker.
    assert group.status_reason.startswith(("rank 1 on node follow failed", "rank 0 on node lead failed"))
    wait_for(lambda: marked_pids() == [] and ray_processes(group.master_port) == [], 20, "no Ray process left")

    def restarted():
        enqueue_on_node(server_reconcile_task, two_nodes.lead, "lead")  # the leader's node restarts its groups
        return group_state(group) == (G.READY, ["ready", "ready"])

    wait_for(restarted, 120, "the group to be restarted")
    group.refresh_from_db()
    assert group.restart_attempts == 1
    again = {s.rank: s.pid for s in Server.objects.filter(group=group)}
    assert again[0] != first[0] and again[1] != first[1]
    groups.group_stop(user=operator_user, group=group)
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")
    assert marked_pids() == [] and ray_processes(group.master_port) == []


def test_a_follower_that_cannot_reach_the_head_fails_preflight_naming_the_node_and_address(two_nodes, group_profile,
                                                                                          operator_user):
    two_nodes.stop("lead")  # the leader's host is down: no Ray head ever listens on the GCS port
    group = start(two_nodes, group_profile, operator_user)
    wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")
    group.refresh_from_db()
    assert group.failure_code == "preflight", group.status_reason
    assert (f"Node follow cannot reach the leader (lead) at 127.0.0.2:{group.master_port} from 127.0.0.3"
            in group.status_reason)
    follower = Server.objects.get(group=group, rank=1)
    assert follower.pid is None  # its `ray start --address` never ran
    assert marked_pids() == [] and ray_processes(group.master_port) == []


def test_the_ray_executable_is_the_one_next_to_the_nodes_vllm():
    assert ray_cluster.ray_executable(str(FAKES / "bin" / "vllm")) == FAKE_RAY
    assert os.access(FAKE_RAY, os.X_OK)


def test_a_ray_head_that_cannot_start_fails_the_group_naming_it(two_nodes, group_profile, settings, operator_user):
    blocker = socket.socket()  # the GCS port is held on the leader's address: the head cannot bind it
    blocker.bind(("127.0.0.2", 0))
    settings.PORTAL_GROUP_MASTER_PORT_FIRST = settings.PORTAL_GROUP_MASTER_PORT_LAST = blocker.getsockname()[1]
    try:
        group = start(two_nodes, group_profile, operator_user)
        assert group.master_port == settings.PORTAL_GROUP_MASTER_PORT_FIRST
        wait_for(lambda: group_state(group)[0] == G.FAILED, 60, "the group to fail")
        wait_for(lambda: all(s in ("stopped", "failed") for s in group_state(group)[1]), 30, "every rank down")
    finally:
        blocker.close()
    group.refresh_from_db()
    assert group.failure_code == "launch_error"
    assert group.status_reason.startswith("rank 0 on node lead failed: The engine could not be launched: the Ray head")
    assert f"exited before its GCS port 127.0.0.2:{group.master_port} answered" in group.status_reason
    leader = Server.objects.get(group=group, rank=0)
    assert "Failed to start the GCS server" in leader.last_log_lines
    wait_for(lambda: marked_pids() == [] and ray_processes(group.master_port) == [], 20, "no Ray process left")


def test_a_worker_restart_finds_its_ray_ranks_again(two_nodes, group_profile, operator_user):
    group = start(two_nodes, group_profile, operator_user)
    wait_for(lambda: group_state(group)[0] == G.READY, 90, "the Ray group to be ready")
    pids = {s.rank: s.pid for s in Server.objects.filter(group=group)}
    two_nodes.restart("follow")  # its reconcile at start finds the `ray start --address` running
    two_nodes.restart("lead")
    enqueue_on_node(server_reconcile_task, two_nodes.follow, "follow")
    enqueue_on_node(server_reconcile_task, two_nodes.lead, "lead")
    time.sleep(3)
    assert group_state(group) == (G.READY, ["ready", "ready"])
    assert {s.rank: s.pid for s in Server.objects.filter(group=group)} == pids
    groups.group_stop(user=operator_user, group=group)  # the restarted workers still reach their ranks
    wait_for(lambda: group_state(group) == (G.STOPPED, ["stopped", "stopped"]), 60, "the group to stop")
    assert marked_pids() == [] and ray_processes(group.master_port) == []


def test_a_node_already_running_a_ray_node_is_refused_for_a_second_ray_group(db, group_profile, operator_user):
    lead, follow = make_node("lead"), make_node("follow")
    busy = group_profile("busy", distributed_backend="ray")
    first = ServerGroup.objects.create(profile=busy, served_model_name="busy", node_count=2, master_addr="127.0.0.2",
                                       master_port=29501, started_by=operator_user, status=G.READY)
    Server.objects.create(node=follow, profile=busy, served_model_name="busy", port=20001, host="127.0.0.3",
                          status=Server.Status.READY, group=first, rank=1, started_by=operator_user)
    with pytest.raises(ValidationFailed) as err:
        start_on = group_profile(distributed_backend="ray")
        groups.group_start(user=operator_user, profile=start_on, nodes=[lead, follow])
    assert err.value.code == "ray_node_busy"
    assert f"Node follow already runs a Ray node for group #{first.pk}" in err.value.message
    # With vLLM's own launch the same nodes are admitted (no Ray port to share).
    mp = groups.group_start(user=operator_user, profile=group_profile("mp-big"), nodes=[lead, follow],
                            allow_replica=True)
    assert mp.status == G.STARTING
    groups.group_stop(user=operator_user, group=mp)  # no worker runs here: its queued ranks leave their queues
