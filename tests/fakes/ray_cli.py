"""A stand-in for Ray's `ray start` (no Ray here), speaking its command line (engines/ray_cluster.py has the facts).

`tests/fakes/bin/ray start ...` sits next to the fake `vllm`, as the real `ray` does in vLLM's environment.

- `--head --port P --node-ip-address IP --num-gpus G --block`: prints what Ray prints ("Local node IP: ...",
  "Ray runtime started." between dashes, the `--block` notice), and starts its GCS as a daemon in its own
  session (setsid): the worst case of a Ray service outside the launcher's process group, reached only through
  the marker it inherits. The GCS (tests/fakes/ray_gcs.py) listens on IP:P and keeps the cluster's table of
  nodes and GPUs; the head registers its own node. `--block` stays in the foreground, checks its GCS every
  second and, when it dies, prints "Some Ray subprocesses exited unexpectedly:" and exits 1, as Ray does.
- `--address H:P --node-ip-address IP --num-gpus G --block`: a worker node. It retries the GCS like Ray
  ("Failed to connect to GCS at address H:P within 5 seconds."), gives up after FAKE_RAY_CONNECT_TIMEOUT_S
  (default 30) with Ray's assertion and exit 1, registers its GPUs and exits 1 once the head goes away.
- Head-only flags on a worker (`--port`, `--include-dashboard`) abort as Ray's do; no `--address` without
  `--head` aborts. SIGTERM stops the node (and the head's GCS) and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VERSION = "2.49.2"


def say(level: str, where: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S") + ",000"
    sys.stdout.write(f"{stamp}\t{level} {where} -- {message}\n" if where else f"{message}\n")
    sys.stdout.flush()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ray start")
    parser.add_argument("--head", action="store_true")
    parser.add_argument("--address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--node-ip-address")
    parser.add_argument("--num-gpus", type=int)
    parser.add_argument("--num-cpus", type=int)
    parser.add_argument("--block", action="store_true")
    parser.add_argument("--disable-usage-stats", action="store_true")
    parser.add_argument("--include-dashboard", type=lambda v: v.lower() in ("1", "true", "yes"))
    parser.add_argument("--dashboard-port", type=int)
    return parser.parse_args(argv)


def _abort(message: str) -> int:
    sys.stderr.write(f"{message}\n")
    return 1


def _request(sock_file, message: dict) -> dict:
    sock_file.write(json.dumps(message) + "\n")
    sock_file.flush()
    line = sock_file.readline()
    if not line:
        raise ConnectionError("the GCS closed the connection")
    return json.loads(line)


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    """Like Ray's GCS client: retry, warning every 5 s, until the timeout."""
    began = time.monotonic()
    last = ""
    warned = began
    while True:
        try:
            return socket.create_connection((host, port), timeout=2)
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - warned >= 5:
            warned = time.monotonic()
            sys.stdout.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')},000 W {os.getpid()} {os.getpid()}] "
                             f"rpc_client.h:153: Failed to connect to GCS at address {host}:{port} within 5 seconds.\n")
            sys.stdout.flush()
        if time.monotonic() - began >= timeout_s:
            raise ConnectionError(f"Failed to connect to GCS at address={host}:{port}. Last exception: {last}")
        time.sleep(0.3)


def _register(host: str, port: int, *, node_ip: str, gpus: int, head: bool, timeout_s: float):
    sock = _connect(host, port, timeout_s)
    sock.settimeout(10)  # something else listening there (not a GCS) never answers: fail, as Ray's client does
    handle = sock.makefile("rw")
    try:
        answer = _request(handle, {"op": "register", "node_ip": node_ip, "GPU": gpus, "head": head,
                                   "pid": os.getpid()})
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"Failed to connect to GCS at address={host}:{port}. Last exception: "
                              f"{type(exc).__name__}: {exc}") from exc
    if not answer.get("ok"):
        raise ConnectionError(f"Failed to connect to GCS at address={host}:{port}. Last exception: {answer}")
    sock.settimeout(None)
    return sock, handle


def _started(head: bool, address: str) -> None:
    say("SUCC", "scripts.py:949", "--------------------")
    say("SUCC", "scripts.py:950", "Ray runtime started.")
    say("SUCC", "scripts.py:951", "--------------------")
    if head:
        say("INFO", "scripts.py:953", "Next steps")
        say("INFO", "scripts.py:956", "  To add another node to this Ray cluster, run")
        say("INFO", "scripts.py:959", f"    ray start --address='{address}'")
    say("INFO", "scripts.py:975", "  To terminate the Ray runtime, run")
    say("INFO", "scripts.py:976", "    ray stop")
    say("INFO", "scripts.py:990", "--block")
    say("INFO", "scripts.py:991", "  This command will now block forever until terminated by a signal.")
    say("INFO", "scripts.py:992", "  Running subprocesses are monitored and a message will be printed if any of them "
                                  "terminate unexpectedly. Subprocesses exit with SIGTERM will be treated as graceful, "
                                  "thus NOT reported.")


def _unexpected(process: str, code: int) -> int:
    say("ERRO", "scripts.py:1010", "Some Ray subprocesses exited unexpectedly:")
    say("ERRO", "scripts.py:1014", f"  {process} [exit code={code}]")
    say("ERRO", "scripts.py:1020", "Remaining processes will be killed.")
    return 1


def _start_gcs(node_ip: str, port: int) -> subprocess.Popen:
    # Its own session: out of this process's group, found again only by the environment it inherits.
    return subprocess.Popen([sys.executable, "-m", "tests.fakes.ray_gcs", node_ip, str(port)], cwd=ROOT,
                            env=dict(os.environ), start_new_session=True, stdin=subprocess.DEVNULL)


def head(args) -> int:
    node_ip = args.node_ip_address or "127.0.0.1"
    port = args.port or 6379
    address = f"{node_ip}:{port}"
    if args.disable_usage_stats:
        say("", "", "Usage stats collection is disabled.")
    say("", "", f"Local node IP: {node_ip}")
    gcs = _start_gcs(node_ip, port)
    problem = _wait_gcs(gcs, node_ip, port)
    if problem:
        _stop(gcs)
        return _abort(f"RuntimeError: Failed to start the GCS server at {address}: {problem}")
    sock, _handle = _register(node_ip, port, node_ip=node_ip, gpus=args.num_gpus or 0, head=True, timeout_s=5)
    _started(True, address)
    return _block(lambda: gcs.poll(), "gcs_server", on_exit=lambda: _stop(gcs), sock=sock)


def _wait_gcs(gcs: subprocess.Popen, host: str, port: int, timeout_s: float = 10) -> str:
    """Until the GCS answers: its exit (a port it could not bind) or the timeout is the head's failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gcs.poll() is not None:
            return f"gcs_server exited with code {gcs.returncode} (see its line above)"
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return ""
        except OSError:
            time.sleep(0.1)
    return f"it did not answer within {timeout_s:g} s"


def worker(args) -> int:
    if args.address is None:
        return _abort("`--address` is a required flag unless starting a head node with `--head`.")
    for flag, value in (("--port", args.port), ("--include-dashboard", args.include_dashboard)):
        if value is not None:
            return _abort(f"ValueError: {flag} should only be specified when starting head node with `--head`.")
    host, _, port = args.address.rpartition(":")
    node_ip = args.node_ip_address or "127.0.0.1"
    say("", "", f"Local node IP: {node_ip}")
    timeout_s = float(os.environ.get("FAKE_RAY_CONNECT_TIMEOUT_S", "30"))
    try:
        sock, _handle = _register(host, int(port), node_ip=node_ip, gpus=args.num_gpus or 0, head=False,
                                  timeout_s=timeout_s)
    except (ConnectionError, OSError) as exc:
        return _abort(f"AssertionError: {exc}")
    _started(False, args.address)
    return _block(lambda: None, "raylet", on_exit=lambda: None, sock=sock)


def _block(dead, process: str, *, on_exit, sock: socket.socket) -> int:
    """--block: stay here; SIGTERM ends the node gracefully, a dead service or a lost GCS ends it with 1."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    sock.settimeout(1.0)
    while not stop["now"]:
        code = dead()
        if code is not None:
            return _unexpected(process, code)
        try:
            if sock.recv(1) == b"":
                on_exit()
                say("ERRO", "", "The node's connection to the GCS was lost: the head is gone.")
                return _unexpected("raylet", 1)
        except TimeoutError:
            continue
        except OSError:
            if stop["now"]:
                break
            return _unexpected("raylet", 1)
    on_exit()
    return 0


def _stop(gcs: subprocess.Popen) -> None:
    if gcs.poll() is None:
        gcs.terminate()
        try:
            gcs.wait(5)
        except subprocess.TimeoutExpired:
            gcs.kill()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"ray, version {VERSION}")
        return 0
    if argv[:1] != ["start"]:
        return _abort("Usage: ray [OPTIONS] COMMAND [ARGS]... (this stand-in knows `ray start`)")
    args = parse(argv[1:])
    return head(args) if args.head else worker(args)
