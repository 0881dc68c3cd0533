"""The Ray stand-ins speak Ray's and vLLM's interfaces: `ray start` flags, messages and exit codes; the fake vLLM's
`--distributed-executor-backend ray` waits for the cluster's GPUs and fails clearly without a head."""
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

BIN = Path(__file__).resolve().parents[1] / "fakes" / "bin"
RAY, VLLM = str(BIN / "ray"), str(BIN / "vllm")


def spawn(*argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SPT_NOENV": "1", **(env or {})}, start_new_session=True)


def run(*argv: str, env: dict | None = None, timeout: float = 30) -> tuple[int, str]:
    proc = spawn(*argv, env=env)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@contextlib.contextmanager
def head(port: int, gpus: int = 1):
    """A fake head and its GCS daemon, torn down by pid however the test ends."""
    proc = spawn(RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-gpus",
                 str(gpus), "--block", "--disable-usage-stats", "--include-dashboard=false")
    try:
        deadline = time.monotonic() + 15
        while not _answers(port):
            assert proc.poll() is None and time.monotonic() < deadline, "the fake head did not come up"
            time.sleep(0.1)
        yield proc
    finally:
        for child in _gcs_of(port):
            child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _answers(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _gcs_of(port: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "tests.fakes.ray_gcs" in " ".join(p.info["cmdline"] or []) and str(port) in p.info["cmdline"]]


@pytest.mark.parametrize("argv, message", [
    (["--node-ip-address", "127.0.0.1", "--block"], "`--address` is a required flag unless starting a head node"),
    (["--address", "127.0.0.1:1", "--port", "6379"], "--port should only be specified when starting head node"),
    (["--address", "127.0.0.1:1", "--include-dashboard=false"], "--include-dashboard should only be specified"),
])
def test_a_worker_node_refuses_what_ray_refuses(argv, message):
    code, out = run(RAY, "start", *argv)
    assert code == 1 and message in out


def test_a_worker_node_that_cannot_reach_the_gcs_gives_up_with_rays_error():
    port = free_port()
    code, out = run(RAY, "start", "--address", f"127.0.0.1:{port}", "--block", env={"FAKE_RAY_CONNECT_TIMEOUT_S": "1"})
    assert code == 1
    assert f"Failed to connect to GCS at address=127.0.0.1:{port}. Last exception: ConnectionRefusedError" in out


def test_the_head_blocks_its_gcs_leaves_its_session_and_a_worker_exits_once_the_head_is_gone():
    port = free_port()
    with head(port) as lead:
        gcs = _gcs_of(port)
        assert len(gcs) == 1 and os.getsid(gcs[0].pid) != os.getsid(lead.pid)
        worker = spawn(RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                       "--num-gpus", "1", "--block")
        time.sleep(1.5)
        assert worker.poll() is None  # --block: in the foreground
        gcs[0].kill()  # the head's service dies
        assert lead.wait(10) == 1 and worker.wait(10) == 1
        assert "Some Ray subprocesses exited unexpectedly:" in lead.stdout.read()
        out = worker.stdout.read()
    assert "Ray runtime started." in out and "Remaining processes will be killed." in out


def test_the_fake_vllm_fails_clearly_when_the_ray_head_is_unreachable():
    port = free_port()
    code, out = run(VLLM, "serve", "Qwen/Qwen3-0.6B", "--port", str(free_port()), "--pipeline-parallel-size", "2",
                    "--distributed-executor-backend", "ray",
                    env={"RAY_ADDRESS": f"127.0.0.1:{port}", "FAKE_VLLM_RAY_CONNECT_TIMEOUT_S": "1"})
    assert code == 1
    assert f"ConnectionError: Failed to connect to GCS at address=127.0.0.1:{port}" in out


def test_the_fake_vllm_waits_for_world_size_gpus_as_vllm_does_then_gives_up():
    port = free_port()
    with head(port, gpus=1):
        code, out = run(VLLM, "serve", "Qwen/Qwen3-0.6B", "--port", str(free_port()), "--pipeline-parallel-size", "2",
                        "--distributed-executor-backend", "ray",
                        env={"RAY_ADDRESS": f"127.0.0.1:{port}", "FAKE_VLLM_RAY_PG_LOG_S": "0.5",
                             "FAKE_VLLM_RAY_PG_TIMEOUT_S": "2"})
    assert code == 1
    assert "Waiting for creating a placement group of specs for" in out
    assert "ValueError: Cannot provide a placement group requiring 2 GPUs" in out


def test_the_fake_vllm_serves_once_the_cluster_has_its_gpus_and_dies_with_a_lost_worker():
    port, http = free_port(), free_port()
    with head(port, gpus=1):
        worker = spawn(RAY, "start", "--address", f"127.0.0.1:{port}", "--num-gpus", "1", "--block")
        engine = spawn(VLLM, "serve", "Qwen/Qwen3-0.6B", "--port", str(http), "--pipeline-parallel-size", "2",
                       "--distributed-executor-backend", "ray", env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
        try:
            deadline = time.monotonic() + 20
            while True:
                assert engine.poll() is None and time.monotonic() < deadline, "the engine did not come up"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{http}/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            os.kill(worker.pid, signal.SIGKILL)
            assert engine.wait(10) == 1
            assert "ActorDiedError" in engine.stdout.read()
        finally:
            for proc in (worker, engine):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
