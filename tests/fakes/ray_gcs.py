"""The fake Ray head's GCS: a daemon (started in its own session by tests/fakes/ray_cli.py) on IP:PORT.

One JSON object a line. `{"op": "register", "node_ip", "GPU", "head"}` adds a node for as long as its connection
stays open (a node whose `ray start` dies leaves the cluster); `{"op": "resources"}` answers the cluster's GPUs and
nodes, as `ray.cluster_resources()` / `ray list nodes` would. It ends on SIGTERM, or after FAKE_RAY_MAX_LIFETIME_S
(default 900) so a test that fails to sweep it leaves nothing for long.
"""
from __future__ import annotations

import json
import os
import signal
import socketserver
import sys
import threading
import time

NODES: dict[int, dict] = {}
LOCK = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        key = id(self)
        try:
            for line in self.rfile:
                message = json.loads(line)
                if message.get("op") == "register":
                    with LOCK:
                        NODES[key] = {"node_ip": message.get("node_ip"), "GPU": int(message.get("GPU") or 0),
                                      "head": bool(message.get("head"))}
                    self._answer({"ok": True, "node_id": f"{key:x}"})
                elif message.get("op") == "resources":
                    with LOCK:
                        nodes = list(NODES.values())
                    self._answer({"GPU": sum(n["GPU"] for n in nodes), "nodes": nodes})
                else:
                    self._answer({"error": f"unknown op {message.get('op')!r}"})
        except (OSError, ValueError):
            pass
        finally:
            with LOCK:
                NODES.pop(key, None)

    def _answer(self, payload: dict) -> None:
        self.wfile.write((json.dumps(payload) + "\n").encode())
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(host: str, port: int) -> int:
    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        sys.stderr.write(f"gcs_server: could not listen on {host}:{port}: {exc}\n")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    lifetime = float(os.environ.get("FAKE_RAY_MAX_LIFETIME_S", "900"))
    timer = threading.Timer(lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    began = time.monotonic()
    server.serve_forever(poll_interval=0.2)
    return 0 if time.monotonic() - began < lifetime else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
