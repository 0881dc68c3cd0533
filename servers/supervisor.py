"""Host-side supervision, run by the node's worker: launch and watch, stop, reconcile.

Every function here takes ids, claims its row with a conditional transition and returns quietly
when another worker got there first, so a task delivered twice does no harm.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from engines import environment, failures, redact, versions
from nodes import probes
from nodes import processes as host_processes
from nodes.models import Node
from servers import clients, lifecycle, logs, processes
from servers.groups import launch as group_launch
from servers.groups import services as groups
from servers.models import Server
from sparkportal.exceptions import InvalidTransition

log = logging.getLogger(__name__)
S = Server.Status
_version_cache: dict[tuple[str, str], tuple[float, str]] = {}


def instance_id() -> str:
    """Which portal a marked process belongs to: one database is one portal."""
    if settings.PORTAL_INSTANCE_ID:
        return settings.PORTAL_INSTANCE_ID
    db = connection.settings_dict
    ident = f"{db.get('ENGINE')}|{db.get('HOST')}|{db.get('PORT')}|{db.get('NAME')}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def probe_env(node: Node) -> dict:
    """The engine's environment without a server marker, for short probes in the engine's Python."""
    return environment.probe_env(base=dict(os.environ), node=node, hf_home=str(settings.PORTAL_WEIGHTS_DIR))


def engine_version(node: Node, engine: str = "vllm") -> str:
    """The engine's version, asked in the engine's own environment; cached for five minutes."""
    executable = node.vllm_executable if engine == "vllm" else node.tei_executable
    key = (executable, engine)
    cached = _version_cache.get(key)
    if cached and time.monotonic() - cached[0] < 300:
        return cached[1]
    argv = versions.probe_argv(engine, executable=executable, python=host_processes.interpreter_of(executable))
    version = ""
    if argv:
        code, out, _err = host_processes.run_capture(argv, timeout=20, env=probe_env(node))
        version = versions.parse_probe_output(engine, out) if code == 0 else ""
    _version_cache[key] = (time.monotonic(), version)
    return version


def engine_facts(node: Node) -> dict:
    """What the start page shows per node: is each engine there, and which version."""
    facts = {}
    for engine, executable in (("vllm", node.vllm_executable), ("tei", node.tei_executable)):
        found = host_processes.executable_found(executable)
        version = engine_version(node, engine) if found else ""
        facts[engine] = {"executable": executable, "found": found, "version": version,
                         "note": versions.support_note(engine, version)}
    return facts


def heartbeat_engine_facts(*, node: Node, host: dict, gpus: list[dict]) -> None:
    """A heartbeat's engine part: which engines are installed, and the memory of unified-memory GPUs,
    which only CUDA in the engine's own Python can tell."""
    host["engines"] = engine_facts(node)
    probes.fill_unified_memory(gpus, python=host_processes.interpreter_of(node.vllm_executable),
                               env=probe_env(node))


# --- launch and watch -------------------------------------------------------------------------------------------

def _queued_before(server: Server) -> QuerySet[Server]:
    """Queued servers of the same node that were asked for earlier (kick_queue's order)."""
    return Server.objects.filter(node_id=server.node_id, status=S.QUEUED).filter(
        Q(created_at__lt=server.created_at) | Q(created_at=server.created_at, pk__lt=server.pk))


def server_launch(server_id: int) -> str:
    """Claim a queued server (one start at a time per node), spawn it, and watch it until ready or failed."""
    server = Server.objects.select_related("node", "profile").get(pk=server_id)
    if server.status == S.STARTING and processes.alive(server.pid, server.pid_started_at):
        return _watch(server_id)  # a redelivered task or a restarted worker: keep watching, never respawn
    with transaction.atomic():
        Node.objects.select_for_update().get(pk=server.node_id)
        if Server.objects.filter(node_id=server.node_id, status=S.STARTING).exclude(pk=server_id).exists():
            return "waiting"  # the start in progress kicks the queue when it is done
        if _queued_before(server).exists():
            # Starts go in the order they were asked for, whichever worker process picks a task up first.
            node = server.node
            transaction.on_commit(lambda: lifecycle.kick_queue(node))
            return "waiting"
        try:
            now = timezone.now()
            server = lifecycle.transition(server_id, to=S.STARTING, allowed_from=(S.QUEUED,), reason="launching",
                                          started_at=now, lease_renewed_at=now, failure_code="", stopped_at=None)
        except InvalidTransition:
            return "not queued"
    if server.group_id is not None:
        problem = group_launch.preflight(server)
        if problem:
            _fail(server_id, code="preflight", reason=problem)
            return "failed"
        if not Server.objects.filter(pk=server_id, status=S.STARTING).exists():
            return "stopped during preflight"  # its group failed or was stopped meanwhile: launch nothing
    if server.node.name == settings.NODE_NAME and processes.port_taken(server.host, server.port):
        _fail(server_id, code="port_in_use", reason=f"Port {server.port} is in use on this host by a process the "
              "portal did not start: stop it or start the server on another port.")
        return "failed"
    try:
        spawned = _spawn(server)
    except Exception as exc:  # noqa: BLE001 - any launch error is this server's failure, in plain words
        _fail(server_id, code="launch_error", reason=f"The engine could not be launched: {exc}")
        return "failed"
    if not _record_pid(server_id, spawned):
        return "stopped during launch"
    return _watch(server_id)


def _record_pid(server_id: int, spawned: processes.Spawned) -> bool:
    """Write the spawned pid if the row is still `starting`; otherwise kill what was spawned. False if killed.

    A stop that came while the engine was being launched found no pid, so it killed nothing and may
    already have marked the row `stopped`; nobody else will ever stop this engine (the leftover sweep
    spares processes started after `stopped_at`).
    """
    with transaction.atomic():
        Server.objects.select_for_update(of=("self",)).get(pk=server_id)
        if Server.objects.filter(pk=server_id, status=S.STARTING).update(
                pid=spawned.pid, pid_started_at=spawned.started_at, lease_renewed_at=timezone.now()):
            return True
    server = Server.objects.select_related("node").get(pk=server_id)
    server.pid, server.pid_started_at = spawned.pid, spawned.started_at
    summary = stop_processes(server)
    log.info("server %s was %s before its launch wrote the pid: %s", server_id, server.status, summary)
    with open(logs.log_path(server_id), "ab") as fh:
        fh.write(f"--- spark portal: server #{server_id} was stopped while it was launching: {summary}\n".encode())
    return False


def _spawn(server: Server) -> processes.Spawned:
    node = server.node
    argv = lifecycle.launch_argv(server=server, profile=server.profile, node=node) if server.profile else server.argv
    if redact.HIDDEN in argv:
        raise ValueError("its stored command line had a secret, which the portal does not keep: start the model "
                         "from a profile instead")
    env = environment.child_env(base=dict(os.environ), node=node, profile=server.profile, server_id=server.pk,
                            instance=instance_id(), cuda_visible_devices=server.cuda_visible_devices,
                            hf_home=str(settings.PORTAL_WEIGHTS_DIR), engine=server.engine,
                            network=group_launch.rank_env(server) if server.group_id else None)
    version = engine_version(node, server.engine)
    path = logs.log_path(server.pk)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(f"--- spark portal: starting server #{server.pk} at {timezone.now().isoformat()}: "
                 f"{' '.join(argv)}\n".encode())
    if server.group_id is not None:
        group_launch.before_spawn(server, env=env, log_path=path)
    spawned = processes.spawn_detached(argv, env=env, log_path=path, cwd=str(settings.VAR_DIR))
    Server.objects.filter(pk=server.pk).update(argv=redact.argv_redact(argv), engine_version=version)
    return spawned


def _watch(server_id: int) -> str:
    """Poll /health until ready; fail on exit or timeout, renewing the start's lease. Returns the outcome."""
    server = Server.objects.select_related("node").get(pk=server_id)
    started = server.started_at or timezone.now()
    deadline = started + timedelta(seconds=settings.PORTAL_SERVER_START_TIMEOUT_S)
    renewed = 0.0
    while True:
        if time.monotonic() - renewed >= settings.PORTAL_SERVER_START_LEASE_S / 4:
            lease_renew(server_id)
            renewed = time.monotonic()
        server = Server.objects.select_related("node").get(pk=server_id)
        if server.status != S.STARTING:
            return server.status  # stopped meanwhile: the stop task owns the processes now
        if not processes.alive(server.pid, server.pid_started_at):
            time.sleep(0.2)  # let the last lines reach the file
            tail = logs.tail(logs.log_path(server_id))
            failure = failures.classify("\n".join(tail))
            _fail(server_id, code=failure.code, reason=failure.message, tail=tail)
            return "failed"
        if _answers(server):
            _ready(server)
            return "ready"
        if timezone.now() > deadline:
            stop_processes(server)
            _fail(server_id, code="health_timeout", reason=f"The engine did not become ready (answer /health) "
                  f"within {settings.PORTAL_SERVER_START_TIMEOUT_S} s, so it was stopped. The last log lines show "
                  "how far it got; if the model only loads slowly, raise PORTAL_SERVER_START_TIMEOUT_S.")
            return "failed"
        time.sleep(settings.PORTAL_HEALTH_POLL_S)


def _answers(server: Server) -> bool:
    """/health answers and /v1/models lists the served name (TEI: /health alone); a headless follower: its leader
    is ready."""
    if server.is_follower:
        return groups.leader_ready(server)
    if not clients.health_ok(server.base_url, timeout=2):
        return False
    return server.engine == "tei" or server.served_model_name in clients.served_names(server.base_url)


def lease_renew(server_id: int) -> bool:
    """Renew a start's lease; False once the server is no longer starting."""
    return bool(Server.objects.filter(pk=server_id, status=S.STARTING).update(lease_renewed_at=timezone.now()))


def lease_expired(now: datetime) -> Q:
    """Starts whose watcher has been silent for longer than the lease."""
    cutoff = now - timedelta(seconds=settings.PORTAL_SERVER_START_LEASE_S)
    # A start claimed before starts had leases counts from its start.
    return Q(status=S.STARTING) & (Q(lease_renewed_at__lt=cutoff) | Q(lease_renewed_at__isnull=True,
                                                                        started_at__lt=cutoff))


def server_start_unwatched(server_id: int) -> str:
    """End a start whose watcher is gone (its lease ran out): adopt the engine if it answers, else fail the start and
    stop what it launched. Safe to run twice.

    1. Take the lease with a conditional UPDATE that repeats the expiry test: a watcher that renewed meanwhile
       keeps its start, and a second reconcile finds a fresh lease and does nothing.
    2. An engine that runs and answers /health (and lists its served name) becomes `ready`.
    3. Anything else is failed, then stopped by its process group and marker, so its GPU memory comes back
       and the node's next start can go.
    """
    now = timezone.now()
    if not Server.objects.filter(lease_expired(now), pk=server_id).update(lease_renewed_at=now):
        return "watched"
    server = Server.objects.select_related("node").get(pk=server_id)
    if processes.alive(server.pid, server.pid_started_at) and _answers(server):
        _ready(server, reason="answering /health (adopted: the worker that launched it is gone)")
        return "adopted"
    _fail(server_id, code="watch_lost", stop=True,
          reason=f"The worker that launched this engine stopped watching it (killed or restarted: no lease renewal "
                 f"for {settings.PORTAL_SERVER_START_LEASE_S:g} s) before it answered /health, so it was stopped. "
                 "Start it again; if workers are being killed, check the worker's log and its memory.")
    return "failed"


# "Model loading took X GiB memory and Y seconds" (0.33) or "... X GiB and Y seconds" (0.26, seen for real).
_MEM = [re.compile(r"Model loading took ([\d.]+) GiB\b"), re.compile(r"Available KV cache memory: ([\d.]+) GiB"),
        re.compile(r"Graph capturing finished in .* took ([\d.]+) GiB")]


def measured_memory_gb(lines: list[str]) -> float | None:
    """Weights + KV cache + CUDA graphs, from vLLM's own startup lines (GiB -> GB)."""
    total, seen = 0.0, False
    for pattern in _MEM:
        for line in reversed(lines):
            match = pattern.search(line)
            if match:
                total += float(match.group(1))
                seen = True
                break
    return round(total * 1.073741824, 2) if seen else None


def _ready(server: Server, *, reason: str = "answering /health") -> None:
    memory = measured_memory_gb(logs.tail(logs.log_path(server.pk), 2000))
    try:
        lifecycle.transition(server.pk, to=S.READY, allowed_from=(S.STARTING,), reason=reason,
                             ready_at=timezone.now(), measured_memory_gb=memory, restart_attempts=0)
    except InvalidTransition:
        return
    groups.rank_ready(server)
    lifecycle.kick_queue(server.node)


def _fail(server_id: int, *, code: str, reason: str, tail: list[str] | None = None, stop: bool = False) -> None:
    """Mark a server failed, then kill what carries its marker (with `stop`: its process group first)."""
    server = Server.objects.select_related("node").get(pk=server_id)
    tail = tail if tail is not None else logs.tail(logs.log_path(server_id))
    restart_at = None
    if server.restart_policy == "on-failure" and server.restart_attempts < server.max_restarts:
        restart_at = timezone.now() + timedelta(
            seconds=settings.PORTAL_RESTART_BACKOFF_S * 2 ** server.restart_attempts)
    try:
        lifecycle.transition(server_id, to=S.FAILED, reason=reason, failure_code=code,
                             last_log_lines="\n".join(tail[-logs.TAIL_LINES:]), stopped_at=timezone.now(),
                             next_restart_at=restart_at)
    except InvalidTransition:
        return
    groups.rank_failed(server_id, code=code, reason=reason)
    if stop:
        stop_processes(server)  # the engine may still be loading: its group first, then its marker
    else:
        sweep(server)  # an orphaned EngineCore would keep the GPU memory
    lifecycle.kick_queue(server.node)


# --- stop -------------------------------------------------------------------------------------------------------

def stop_processes(server: Server) -> str:
    """SIGTERM the group, wait the node's stop timeout, SIGKILL it, then sweep the marker. Returns what happened."""
    steps = []
    pid, timeout = server.pid, server.node.stop_timeout_s
    if pid and processes.alive(pid, server.pid_started_at):
        pgid = processes.pgid_of(pid)
        own_group = pgid == pid
        extra = [] if own_group else processes.descendants(pid)
        began = time.monotonic()
        if own_group:
            processes.signal_group(pid, signal.SIGTERM)
            gone = processes.wait_group_gone(pid, timeout)
        else:  # an adopted process that shares its group with others: signal it and its own tree only
            for target in [pid, *extra]:
                processes.signal_pid(target, signal.SIGTERM)
            gone = _wait_pids_gone([pid, *extra], timeout)
        if gone:
            steps.append(f"SIGTERM: exited in {time.monotonic() - began:.1f} s")
        else:
            if own_group:
                processes.signal_group(pid, signal.SIGKILL)
                processes.wait_group_gone(pid, 5)
            else:
                for target in [pid, *extra]:
                    processes.signal_pid(target, signal.SIGKILL)
            steps.append(f"no exit within {timeout} s after SIGTERM: SIGKILL")
    else:
        steps.append("process already gone")
    swept = sweep(server)
    if swept:
        steps.append(f"killed {swept} leftover process(es) carrying the server's marker")
    return "; ".join(steps)


def _wait_pids_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(processes.alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(processes.alive(p) for p in pids)


def sweep(server: Server) -> int:
    """Kill what still carries this server's marker (EngineCore children that outlived their parent)."""
    return processes.kill_pids(processes.marked(instance=instance_id(), server_id=server.pk))


def server_stop(server_id: int) -> str:
    server = Server.objects.select_related("node").get(pk=server_id)
    if server.status != S.STOPPING:
        return "not stopping"
    summary = stop_processes(server)
    try:
        lifecycle.transition(server_id, to=S.STOPPED, allowed_from=(S.STOPPING,), reason=summary, pid=None,
                             stopped_at=timezone.now(), next_restart_at=None)
    except InvalidTransition:
        return "already handled"
    groups.rank_stopped(server)
    lifecycle.kick_queue(server.node)
    return summary
