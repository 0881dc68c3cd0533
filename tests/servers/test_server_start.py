"""server_start: admission, launch, readiness and a stop that leaves nothing behind."""
import os
import socket

import psutil
import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied

from accounts.models import AuditEvent
from servers import logs, services, supervisor
from servers.models import Server, ServerEvent
from sparkportal.exceptions import ValidationFailed
from tests.conftest import free_port
from tests.servers.conftest import FAKES, engine_pids, wait_status


def test_it_starts_a_server_that_becomes_ready_and_stops_leaving_nothing(celery_worker, node, make_profile,
                                                                          operator_user):
    profile = make_profile(extra_flags="--max-num-batched-tokens 2048 --enable-log-requests")
    server = services.server_start(user=operator_user, profile=profile, node=node)
    server = wait_status(server, "ready")

    assert settings.PORTAL_ENGINE_PORT_FIRST <= server.port <= settings.PORTAL_ENGINE_PORT_LAST and server.pid
    assert server.engine_version == "0.33.0"
    assert server.argv[1:3] == ["serve", "Qwen/Qwen3-0.6B"]
    assert server.argv[server.argv.index("--gpu-memory-utilization") + 1] == "0.3"
    assert server.argv[-3:] == ["--max-num-batched-tokens", "2048", "--enable-log-requests"]
    assert server.measured_memory_gb == pytest.approx((1.5 + 10.0) * 1.073741824, abs=0.01)
    pids = engine_pids(server)
    # The API server, multiprocessing's resource tracker and the EngineCore, all carrying the marker and all
    # in the API server's process group, as real vLLM 0.26 runs.
    assert len(pids) == 3 and {os.getpgid(pid) for pid in pids} == {server.pid}
    engine, tracker = sorted((" ".join(psutil.Process(pid).cmdline()).strip() for pid in pids if pid != server.pid),
                             key=lambda line: "resource_tracker" in line)
    assert engine == "VLLM::EngineCore" and "-c from multiprocessing.resource_tracker import main;main(" in tracker
    with open(f"/proc/{server.pid}/environ", "rb") as fh:
        env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    assert env[b"LD_LIBRARY_PATH"].startswith(b"/opt/cuda/lib64")
    assert env[b"CUDA_VISIBLE_DEVICES"] == b"0" and env[b"SPARKPORTAL_SERVER_ID"] == str(server.pk).encode()

    services.server_stop(user=operator_user, server=server)
    server = wait_status(server, "stopped")
    assert server.pid is None
    assert "SIGTERM: exited" in server.status_reason
    assert engine_pids(server) == []
    history = list(ServerEvent.objects.filter(server=server).order_by("at", "id").values_list("old", "new"))
    assert history == [("stopped", "queued"), ("queued", "starting"), ("starting", "ready"), ("ready", "stopping"),
                       ("stopping", "stopped")]
    actions = set(AuditEvent.objects.filter(target_id=str(server.pk)).values_list("action", flat=True))
    assert actions == {"servers.server.started", "servers.server.stopped"}


def test_it_refuses_unknown_and_metric_killing_flags(node, make_profile, operator_user):
    with pytest.raises(ValidationFailed, match=r"vLLM 0\.33\.0 does not know --no-such-flag"):
        services.server_start(user=operator_user, profile=make_profile("a", extra_flags="--no-such-flag 3"),
                              node=node)
    with pytest.raises(ValidationFailed, match="--disable-log-stats removes every vllm:\\* metric"):
        services.server_start(user=operator_user, profile=make_profile("b", extra_flags="--disable-log-stats"),
                              node=node)
    with pytest.raises(ValidationFailed, match="--port is set by the portal"):
        services.server_start(user=operator_user, profile=make_profile("c", extra_flags="--port 9000"), node=node)
    with pytest.raises(ValidationFailed, match="invalid choice: 'fifo'"):
        services.server_start(user=operator_user, profile=make_profile("d", extra_flags="--scheduling-policy fifo"),
                              node=node)
    assert not Server.objects.exists()


def test_it_refuses_a_start_over_the_node_budget(node, make_profile, operator_user):
    Server.objects.create(node=node, served_model_name="big", port=8150, status="ready", gpu_memory_utilization=0.6)
    with pytest.raises(ValidationFailed) as err:
        services.server_start(user=operator_user, profile=make_profile(gpu_memory_utilization=0.3), node=node)
    assert err.value.code == "over_budget"
    assert err.value.message.startswith(f"Node {node.name} would use 0.90 of its GPU memory budget 0.85 "
                                        "(0.60 by running servers + 0.30 for this one)")


def test_it_refuses_a_model_that_does_not_fit_in_free_memory(node, make_profile, operator_user):
    node.gpu_facts = [{"index": 0, "name": "NVIDIA H100", "memory_total_gb": 80.0, "memory_used_gb": 70.0,
                       "unified_memory": False}]
    node.save()
    profile = make_profile(gpu_memory_utilization=0.5)
    Server.objects.create(node=node, profile=profile, served_model_name="old", port=8160, status="stopped",
                          measured_memory_gb=24.0)
    with pytest.raises(ValidationFailed) as err:
        services.server_start(user=operator_user, profile=profile, node=node)
    assert err.value.code == "not_enough_memory"
    assert "needs about 24.0 GB (measured at its last start) but node" in err.value.message
    assert "has only 10.0 GB free of 80.0 GB" in err.value.message


def test_it_refuses_a_port_in_use(node, make_profile, operator_user):
    Server.objects.create(node=node, served_model_name="other", port=8170, status="ready", gpu_memory_utilization=0.1)
    with pytest.raises(ValidationFailed, match=r"Port 8170 on node .* is used by server #\d+ \(other, ready\)"):
        services.server_start(user=operator_user, profile=make_profile("a"), node=node, port=8170)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with pytest.raises(ValidationFailed, match=f"Port {port} is in use on .* by a process the portal did not"):
            services.server_start(user=operator_user, profile=make_profile("b"), node=node, port=port)


def test_it_refuses_a_second_start_of_the_same_profile(node, make_profile, operator_user):
    profile = make_profile()
    first = services.server_start(user=operator_user, profile=profile, node=node)
    with pytest.raises(ValidationFailed, match=f"already queued on node {node.name} as server #{first.pk}"):
        services.server_start(user=operator_user, profile=profile, node=node)
    replica = services.server_start(user=operator_user, profile=profile, node=node, allow_replica=True)
    assert replica.port != first.port


def test_members_may_not_start_servers(node, make_profile, member_user):
    with pytest.raises(PermissionDenied):
        services.server_start(user=member_user, profile=make_profile(), node=node)


def test_a_node_whose_vllm_is_026_starts_reads_its_version_and_memory(celery_worker, node, make_profile,
                                                                      operator_user):
    node.extra_env = {"PYTHONPATH": str(FAKES / "site-0.26"), "FAKE_VLLM_VERSION": "0.26.0"}
    node.save()
    supervisor._version_cache.clear()  # the probe's answer for this executable is cached
    try:
        server = wait_status(services.server_start(user=operator_user, profile=make_profile(), node=node), "ready")
        assert server.engine_version == "0.26.0"
        assert "Model loading took 1.5 GiB and " in logs.log_path(server.pk).read_text()
        assert server.measured_memory_gb == pytest.approx((1.5 + 10.0) * 1.073741824, abs=0.01)
        services.server_stop(user=operator_user, server=server)
        wait_status(server, "stopped")
    finally:
        supervisor._version_cache.clear()
