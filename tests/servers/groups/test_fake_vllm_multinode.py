"""The vLLM stand-in's multi-node launch does a real rendezvous (torch.distributed, gloo on CPU) at the master
address: the leader waits for its followers, a follower that cannot reach its leader fails, and each side exits
when the other is gone."""
import contextlib
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.servers.test_fake_vllm import FAKE_VLLM


class Rank:
    def __init__(self, rank: int, master: str, master_port: int, *, host: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        args = ["serve", "Qwen/Qwen3-8B", "--host", host, "--port", str(self.port), "--pipeline-parallel-size", "2",
                "--nnodes", "2", "--node-rank", str(rank), "--master-addr", master, "--master-port", str(master_port)]
        self.proc = subprocess.Popen([FAKE_VLLM, *args, *(["--headless"] if rank else [])],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "SPT_NOENV": "1", "GLOO_SOCKET_IFNAME": "lo",
                                          "FAKE_VLLM_STARTUP_DELAY_S": "0", **(env or {})},
                                     start_new_session=True)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def output(self, timeout: float = 30) -> str:
        return self.proc.communicate(timeout=timeout)[0]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ValueError, subprocess.TimeoutExpired):
            self.proc.communicate(timeout=10)


@pytest.fixture
def ranks():
    started = []

    def start(*args, **kwargs) -> Rank:
        started.append(Rank(*args, **kwargs))
        return started[-1]

    yield start
    for rank in started:
        rank.close()


def until(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_the_leader_serves_only_once_its_follower_joined_and_dies_with_it(ranks):
    master_port = free_port()
    leader = ranks(0, "127.0.0.2", master_port, host="127.0.0.2", env={"FAKE_VLLM_PEER_TIMEOUT_S": "2"})
    time.sleep(6)  # long enough to load torch and listen: it waits for its follower, as vLLM's leader does
    assert leader.proc.poll() is None and not leader.healthy()
    follower = ranks(1, "127.0.0.2", master_port, host="127.0.0.3")
    assert until(leader.healthy, 40)
    os.killpg(follower.proc.pid, signal.SIGKILL)
    assert until(lambda: leader.proc.poll() is not None, 20)
    assert "Worker on node rank 1 died" in leader.output()


def test_a_follower_that_cannot_reach_its_leader_fails_with_torchs_error(ranks):
    follower = ranks(1, "127.0.0.2", free_port(), host="127.0.0.3", env={"FAKE_VLLM_RENDEZVOUS_TIMEOUT_S": "3"})
    out = follower.output(60)
    assert follower.proc.returncode == 1
    assert "Launching vLLM (v0.33.0) headless multiproc executor, with head node address 127.0.0.2:" in out
    assert "DistNetworkError: The client socket has timed out after 3000ms while trying to connect to (127.0.0.2" in out


def test_a_follower_exits_when_its_leader_is_gone(ranks):
    master_port = free_port()
    leader = ranks(0, "127.0.0.2", master_port, host="127.0.0.2")
    follower = ranks(1, "127.0.0.2", master_port, host="127.0.0.3")
    assert until(leader.healthy, 40)
    os.killpg(leader.proc.pid, signal.SIGKILL)
    assert until(lambda: follower.proc.poll() is not None, 20)
    assert follower.proc.returncode == 1 and "Lost the connection to the master node 127.0.0.2:" in follower.output()
