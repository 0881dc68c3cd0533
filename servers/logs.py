"""Server log files: where they live, their tail, search, size rotation, and the live pump.

Each engine writes stdout+stderr to var/logs/server-<id>.log through an O_APPEND descriptor it
owns, so rotation is copy-then-truncate (the writer keeps appending at the new end). The pump runs
in the node's worker (the files are on that host): every ~100 ms it reads what each live server's
log gained and publishes it as one batched `server.log` event, which keeps 20,000 lines/s to a
handful of channel-layer messages per second.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

TAIL_LINES = 200
READ_CHUNK = 4 * 1024 * 1024
MAX_LINES_PER_EVENT = 5000


def log_path(server_id: int) -> Path:
    return Path(settings.PORTAL_LOG_DIR) / f"server-{server_id}.log"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines, reading backwards in blocks (log files can be large)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            block, data = 64 * 1024, b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - block)
                fh.seek(start)
                data = fh.read(end - start) + data
                end = start
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def search(path: Path, query: str, *, limit: int = 500) -> list[tuple[int, str]]:
    """(line number, line) of lines containing `query` (case-insensitive), last `limit` matches."""
    needle = re.compile(re.escape(query), re.IGNORECASE)
    found: list[tuple[int, str]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if needle.search(line):
                    found.append((number, line.rstrip("\n")))
                    if len(found) > limit:
                        del found[0]
    except FileNotFoundError:
        return []
    return found


def lines_read(server_id: int, *, lines: int = TAIL_LINES, query: str = "") -> list[str]:
    """The tail of a server's log on this host, or its lines matching `query` (numbered)."""
    path = log_path(server_id)
    if query:
        return [f"{number}: {line}" for number, line in search(path, query)]
    return tail(path, lines)


REMOTE_READ_TIMEOUT_S = 10


def server_log_lines(*, server, lines: int = TAIL_LINES, query: str = "") -> list[str]:
    """`lines_read` on the host that has the file: here, or through that node's worker.

    A page waits at most REMOTE_READ_TIMEOUT_S for another node's worker, then says which worker did not
    answer; live lines reach pages through the log pump's events instead.
    """
    if server.node.name == settings.NODE_NAME:
        return lines_read(server.pk, lines=lines, query=query)
    from celery.exceptions import TimeoutError as CeleryTimeout

    from servers.tasks import server_log_tail_task
    from sparkportal.celery import enqueue_on_node
    from sparkportal.exceptions import Unavailable

    result = enqueue_on_node(server_log_tail_task, server.node, server.pk, lines, query,
                             expires=REMOTE_READ_TIMEOUT_S)
    try:
        return result.get(timeout=REMOTE_READ_TIMEOUT_S)
    except CeleryTimeout:
        raise Unavailable(f"The worker of node {server.node.name} did not send the log within "
                          f"{REMOTE_READ_TIMEOUT_S} s: check that it runs (queue {server.node.queue}).") from None


def rotate(path: Path, *, backups: int) -> None:
    """copytruncate: server-1.log -> .1 -> .2 ...; the engine's descriptor stays valid."""
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    if backups > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as fh:
        fh.truncate(0)


class LogPump(threading.Thread):
    """Follows the logs of this node's live servers and publishes new lines in batches."""

    def __init__(self, *, node_name: str, interval: float = 0.1, refresh: float = 1.0):
        super().__init__(name=f"log-pump-{node_name}", daemon=True)
        self.node_name = node_name
        self.interval = interval
        self.refresh = refresh
        self.offsets: dict[int, int] = {}
        self.pending: dict[int, bytes] = {}
        self.stopping = threading.Event()
        # The worker thread that started the pump: an embedded worker (tests) may end without stopping its
        # steps, and a pump that outlived its worker would follow logs for nobody.
        self.owner = threading.current_thread()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        from django.db import close_old_connections, connection

        watched: list[int] = []
        next_refresh = 0.0
        try:
            while not self.stopping.is_set() and self.owner.is_alive():
                now = time.monotonic()
                if now >= next_refresh:
                    close_old_connections()
                    try:
                        watched = self._watched()
                    except Exception:  # noqa: BLE001 - a database hiccup must not end the pump
                        log.warning("log pump could not list servers", exc_info=True)
                    next_refresh = now + self.refresh
                for server_id in watched:
                    self.pump_once(server_id)
                self.stopping.wait(self.interval)
        finally:
            connection.close()

    def _watched(self) -> list[int]:
        from datetime import timedelta

        from django.db.models import Q
        from django.utils import timezone

        from servers.models import Server

        recent = timezone.now() - timedelta(seconds=30)
        ids = list(Server.objects.filter(node__name=self.node_name).filter(
            Q(status__in=Server.LIVE) | Q(stopped_at__gte=recent)).values_list("pk", "started_at"))
        for server_id, started in ids:
            if server_id not in self.offsets:
                # A server that just started is followed from its first byte; an older one from now on
                # (the page loads the history itself).
                fresh = started is not None and started >= timezone.now() - timedelta(seconds=60)
                path = log_path(server_id)
                self.offsets[server_id] = 0 if fresh or not path.exists() else path.stat().st_size
        return [server_id for server_id, _ in ids]

    def pump_once(self, server_id: int) -> int:
        """Publish what server_id's log gained since last time; returns the number of lines sent."""
        from servers import events

        path = log_path(server_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        offset = self.offsets.get(server_id, 0)
        rotated = False
        if size < offset:  # truncated by a rotation
            offset, rotated = 0, True
            self.pending.pop(server_id, None)
        if size == offset:
            self._maybe_rotate(path, size, server_id)
            return 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = self.pending.pop(server_id, b"") + fh.read(min(size - offset, READ_CHUNK))
        self.offsets[server_id] = offset + min(size - offset, READ_CHUNK)
        cut = data.rfind(b"\n")
        if cut < 0:
            self.pending[server_id] = data
            return 0
        self.pending[server_id] = data[cut + 1:]
        lines = data[:cut].decode("utf-8", "replace").split("\n")
        for start in range(0, len(lines), MAX_LINES_PER_EVENT):
            events.send_server_log({"server_id": server_id, "lines": lines[start:start + MAX_LINES_PER_EVENT],
                                    "rotated": rotated and start == 0})
        self._maybe_rotate(path, self.offsets[server_id], server_id)
        return len(lines)

    def _maybe_rotate(self, path: Path, size: int, server_id: int) -> None:
        if size > settings.PORTAL_SERVER_LOG_MAX_BYTES and self.offsets.get(server_id) == size:
            rotate(path, backups=settings.PORTAL_SERVER_LOG_BACKUPS)
            self.offsets[server_id] = 0


_pump: LogPump | None = None


def pump_start(node_name: str) -> LogPump:
    global _pump
    if _pump is None or not _pump.is_alive():
        _pump = LogPump(node_name=node_name)
        _pump.start()
    return _pump


def pump_stop() -> None:
    global _pump
    if _pump is not None:
        _pump.stop()
        _pump.join(timeout=5)
        _pump = None
