"""A start that fails says why, in plain words, and keeps the last log lines."""
import socket

import psutil
import pytest

from engines import failures
from servers import services
from tests.servers.conftest import engine_pids, wait_status


def _fail_with(celery_worker, node, make_profile, operator_user, env: dict, **kwargs):
    profile = make_profile(extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1", **env}, **kwargs)
    server = services.server_start(user=operator_user, profile=profile, node=node)
    server = wait_status(server, "failed")
    assert engine_pids(server) == []
    return server


def test_cuda_out_of_memory_is_reported_as_such(celery_worker, node, make_profile, operator_user):
    server = _fail_with(celery_worker, node, make_profile, operator_user, {"FAKE_VLLM_FAIL": "oom"})
    assert server.failure_code == "oom"
    assert server.status_reason.startswith("CUDA out of memory while loading the model")
    assert "torch.OutOfMemoryError: CUDA out of memory." in server.last_log_lines
    assert len(server.last_log_lines.splitlines()) <= 200


def test_a_flag_the_nodes_vllm_does_not_know_is_reported(celery_worker, node, make_profile, operator_user):
    server = _fail_with(celery_worker, node, make_profile, operator_user,
                        {"FAKE_VLLM_REJECT_FLAGS": "--enable-log-requests"}, extra_flags="--enable-log-requests")
    assert server.failure_code == "unknown_flag"
    assert server.status_reason == ("vLLM refused an unknown flag (--enable-log-requests): fix the profile's extra "
                                    "flags.")


def test_a_missing_cuda_library_points_at_the_library_path(celery_worker, node, make_profile, operator_user):
    server = _fail_with(celery_worker, node, make_profile, operator_user, {"FAKE_VLLM_FAIL": "missing-library"})
    assert server.failure_code == "missing_library"
    assert "(libcusparseLt.so.0)" in server.status_reason and "LD_LIBRARY_PATH prefix" in server.status_reason


def test_an_engine_that_never_becomes_healthy_is_stopped_and_failed(celery_worker, node, make_profile,
                                                                    operator_user, settings):
    settings.PORTAL_SERVER_START_TIMEOUT_S = 2
    server = _fail_with(celery_worker, node, make_profile, operator_user, {"FAKE_VLLM_STARTUP_DELAY_S": "600"})
    assert server.failure_code == "health_timeout"
    assert server.status_reason == ("The engine did not become ready (answer /health) within 2 s, so it was "
                                    "stopped. The last log lines show how far it got; if the model only loads "
                                    "slowly, raise PORTAL_SERVER_START_TIMEOUT_S.")
    assert "Starting to load model Qwen/Qwen3-0.6B..." in server.last_log_lines  # where it hung
    assert "Application startup complete." not in server.last_log_lines
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE


def test_a_port_taken_after_admission_fails_the_launch(node, make_profile, operator_user, transactional_db,
                                                       request):
    profile = make_profile(extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "0.1"})
    server = services.server_start(user=operator_user, profile=profile, node=node)
    with socket.socket() as sock:  # someone grabs the port while the start waits in the queue
        sock.bind(("127.0.0.1", server.port))
        sock.listen()
        request.getfixturevalue("celery_worker")
        server = wait_status(server, "failed")
    assert server.failure_code == "port_in_use"
    assert server.status_reason.startswith(f"Port {server.port} is in use on this host")


@pytest.mark.parametrize(("line", "code"), [
    ("OSError: [Errno 98] Address already in use", "port_in_use"),
    ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`", "kv_cache"),
    ("ImportError: /x/libtorch_cuda.so: undefined symbol: cuTensorMapEncodeTiled", "wrong_wheel"),
    ("ValueError: Free memory on device cuda:0 (12.4/79.19 GiB) on startup is less than desired GPU memory "
     "utilization (0.92, 72.85 GiB).", "oom"),
    ("RuntimeError: Engine core initialization failed. See root cause above.", "engine_failed"),
])
def test_log_lines_are_classified(line, code):
    assert failures.classify(f"INFO starting\n{line}\n").code == code


def test_a_missing_flashinfer_wheel_says_how_to_start_without_it(celery_worker, node, make_profile, operator_user):
    server = _fail_with(celery_worker, node, make_profile, operator_user, {"FAKE_VLLM_FAIL": "missing-flashinfer"})
    assert server.failure_code == "missing_module"
    assert "VLLM_USE_FLASHINFER_SAMPLER=0" in server.status_reason
    assert "ModuleNotFoundError: No module named 'flashinfer'" in server.last_log_lines
    assert server.last_log_lines.rstrip().endswith("Failed core proc(s): {}")
