"""Host-side sleep and wake, run by the node's worker: ask the engine, then check what it says it did.

vLLM's development endpoints (`POST /sleep?level=N`, `POST /wake_up`, `GET /is_sleeping`) are reached only
from here: the engine listens on the node (PORTAL_ENGINE_HOST) and the gateway forwards none of them.
An answer of 200 is not taken as done: `/is_sleeping` and the `vllm:engine_sleep_state` gauge must agree.
Each function claims nothing new: it acts only while the row is in the state its service left it in, so a
task delivered twice does no harm.
"""
from __future__ import annotations

import time

from django.conf import settings

from servers import clients, lifecycle, processes, supervisor
from servers.models import Server

S = Server.Status


def confirm(base_url: str, *, level: int) -> tuple[bool, str]:
    """(True, evidence) once /is_sleeping and the gauge both report `level` (0: awake); else (False, what they said).

    A missing gauge (an engine without it) leaves /is_sleeping alone as the evidence.
    """
    deadline = time.monotonic() + settings.PORTAL_SLEEP_CONFIRM_S
    said = ""
    while True:
        asleep = clients.engine_is_sleeping(base_url)
        gauge = clients.engine_sleep_gauge(base_url)
        if asleep is (level > 0) and gauge in (level, None):
            evidence = f"/is_sleeping {str(asleep).lower()}"
            return True, evidence + (f", vllm:engine_sleep_state level {gauge}" if gauge is not None else "")
        said = f"/is_sleeping said {asleep}, vllm:engine_sleep_state said level {gauge}"
        if time.monotonic() > deadline:
            return False, said
        time.sleep(0.1)


def server_sleep(server_id: int) -> str:
    """Ask a `sleeping` (not yet confirmed) server's engine to sleep at its level and confirm it."""
    server = Server.objects.select_related("node").get(pk=server_id)
    if server.status != S.SLEEPING or server.slept_at is not None:
        return "not falling asleep"
    level = server.sleep_level or 1
    posted = clients.engine_sleep(server.base_url, level=level, timeout=settings.PORTAL_SLEEP_TIMEOUT_S)
    ok, evidence = confirm(server.base_url, level=level) if posted.ok else (False, posted.error)
    if not ok:
        if not processes.alive(server.pid, server.pid_started_at):
            return _engine_gone(server)
        lifecycle.server_sleep_refused(server_id=server_id, reason=evidence)
        return "refused"
    if not lifecycle.server_sleep_confirmed(server_id=server_id, level=level, evidence=evidence):
        # A wake (or a stop) was asked while the engine was going to sleep: the row no longer says asleep.
        # Wake it again so that what the engine does matches; a waking row is then confirmed by its own task.
        clients.engine_wake(server.base_url, timeout=settings.PORTAL_WAKE_TIMEOUT_S)
        return "woken again"
    return "asleep"


def server_wake(server_id: int) -> str:
    """Ask a `waking` server's engine to wake up and confirm it."""
    server = Server.objects.select_related("node").get(pk=server_id)
    if server.status != S.WAKING:
        return "not waking"
    deadline = time.monotonic() + settings.PORTAL_WAKE_TIMEOUT_S
    ok, evidence = False, ""
    # A sleep racing this wake can land after the first /wake_up: ask again until the engine stays awake.
    while not ok and time.monotonic() < deadline:
        posted = clients.engine_wake(server.base_url, timeout=settings.PORTAL_WAKE_TIMEOUT_S)
        ok, evidence = confirm(server.base_url, level=0) if posted.ok else (False, posted.error)
        if not posted.ok:
            break
    if ok:
        lifecycle.server_woken(server_id=server_id, evidence=evidence)
        return "awake"
    if not processes.alive(server.pid, server.pid_started_at):
        return _engine_gone(server)
    lifecycle.server_wake_refused(server_id=server_id, reason=evidence)
    return "refused"


def server_swap(sleep_id: int, wake_id: int) -> str:
    """Sleep one server, then wake the other: in this order, so the woken engine finds the memory free."""
    slept = server_sleep(sleep_id)
    if slept not in ("asleep", "not falling asleep"):
        lifecycle.server_wake_refused(server_id=wake_id, reason=f"the swap could not put #{sleep_id} to sleep")
        return f"sleep {slept}"
    return f"sleep {slept}, wake {server_wake(wake_id)}"


def _engine_gone(server: Server) -> str:
    supervisor._fail(server.pk, code="exited", reason=f"The engine process (pid {server.pid}) is gone.")
    return "failed"


def server_sleep_observe(server: Server, metrics_text: str) -> None:
    """Correct the row when a scrape's `vllm:engine_sleep_state` contradicts it and `/is_sleeping` agrees.

    A ready row whose engine sleeps (put to sleep outside the portal) would take requests that hang; a
    confirmed sleeper that is awake would be woken for nothing. An operation in progress (sleeping not yet
    confirmed, waking) is its task's business.
    """
    level = clients.sleep_level_of(metrics_text)
    if level is None or server.engine != Server.Engine.VLLM:
        return
    asleep_row = server.status == S.SLEEPING and server.slept_at is not None
    if not ((server.status == S.READY and level > 0) or (asleep_row and level == 0)):
        return
    if clients.engine_is_sleeping(server.base_url) is not (level > 0):  # the scrape may predate a change
        return
    lifecycle.server_sleep_observed(server_id=server.pk, level=level)
