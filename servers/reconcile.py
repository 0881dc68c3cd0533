"""Reconcile a node's rows with the processes really running on it (periodic, and at worker start).

- a live row whose process (pid + start time, as recorded at launch) is gone becomes `failed` (with the
  classified log tail), and whatever still carries its marker is killed so the GPU memory comes back;
- at worker start, a `starting` row whose process lives is watched again (never spawned twice);
- a `starting` row whose lease ran out lost the worker watching it (a killed pool process is not
  redelivered): its engine is adopted if it answers /health, else the start fails and what it launched is
  stopped, so the node's queue goes on;
- processes that carry the marker of a stopped or failed server are leftovers and are killed;
- a vLLM/TEI process that carries no portal marker is listed as an `external` row;
- queued servers are launched when no start is in progress; failed servers with the on-failure
  policy are queued again once their back-off has passed.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from engines import failures, redact, vllm_cli
from nodes.models import Node
from servers import lifecycle, logs, processes, supervisor, tasks
from servers.groups import services as groups
from servers.models import Server
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import InvalidTransition

log = logging.getLogger(__name__)
S = Server.Status


def node_reconcile(*, node: Node, at_worker_start: bool = False) -> dict:
    report = {"failed": [], "adopted": [], "resumed": [], "running": [], "external": [], "gone": [], "leftovers": 0,
              "restarted": []}
    instance = supervisor.instance_id()
    unwatched = Server.objects.filter(supervisor.lease_expired(timezone.now()), node=node)
    for server_id in unwatched.values_list("pk", flat=True):
        outcome = supervisor.server_start_unwatched(server_id)
        if outcome in ("adopted", "failed"):
            report[outcome].append(server_id)
    for server in Server.objects.filter(node=node, status__in=(S.STARTING, *Server.RUNNING)).select_related("node"):
        if processes.alive(server.pid, server.pid_started_at):
            report["running"].append(server.pk)
            if at_worker_start and server.status == S.STARTING:
                _send(tasks.server_launch_task, server)
                report["resumed"].append(server.pk)
            continue
        if server.pid is None or server.pid_started_at is None:
            # Being spawned right now, or a row whose process the supervisor never identified (it records
            # each process's start time, so a reused pid is never taken for ours): nothing to judge.
            continue
        tail = logs.tail(logs.log_path(server.pk))
        failure = failures.classify("\n".join(tail))
        # A SIGKILLed API server leaves its EngineCore (holding the GPU memory) and resource tracker running;
        # _fail kills what carries the marker once the row is failed.
        survivors = processes.marked(instance=instance, server_id=server.pk)
        reason = f"The engine process (pid {server.pid}) is gone."
        if survivors:
            reason += (f" It left {len(survivors)} process(es) with its marker running (its EngineCore keeps the "
                       "GPU memory); they were killed.")
        if failure.code != "exited" or not survivors:
            reason += f" {failure.message}"
        supervisor._fail(server.pk, code=failure.code, reason=reason, tail=tail)
        report["failed"].append(server.pk)
    if at_worker_start:
        for server in Server.objects.filter(node=node, status=S.STOPPING).select_related("node"):
            _send(tasks.server_stop_task, server)  # the worker that was stopping it is gone
        for server in Server.objects.filter(node=node, status=S.WAKING).select_related("node"):
            _send(tasks.server_wake_task, server)
        for server in Server.objects.filter(node=node, status=S.SLEEPING, slept_at=None).select_related("node"):
            _send(tasks.server_sleep_task, server)
    report["leftovers"] = _kill_leftovers(node, instance)
    report["external"], report["gone"] = _externals(node, instance)
    report["restarted"] = _restarts(node) + [f"group {g}" for g in groups.groups_restart_due(node)]
    lifecycle.kick_queue(node)
    if at_worker_start or any(report[k] for k in ("failed", "adopted", "external", "gone", "leftovers", "restarted")):
        log.info("node %s reconciled%s: %s", node.name, " at worker start" if at_worker_start else "", report)
    return report


def _kill_leftovers(node: Node, instance: str) -> int:
    """Marked processes of servers that are not running any more, started before the server stopped."""
    killed = 0
    for server_id, pids in processes.marked_by_server(instance=instance).items():
        server = Server.objects.filter(pk=server_id, node=node).first()
        if server is None or server.status not in (S.STOPPED, S.FAILED) or server.stopped_at is None:
            continue
        stopped = server.stopped_at.timestamp()
        stale = [pid for pid in pids if (processes.started_at(pid) or stopped) <= stopped + 1]
        killed += processes.kill_pids(stale)
    return killed


def parse_engine_argv(argv: list[str]) -> tuple[str, str, int]:
    """(engine, served name, port) from a vLLM or TEI command line found on the host."""
    if any(part.endswith("text-embeddings-router") for part in argv[:3]):
        values = _flag_values(argv, {"--model-id": "model", "--served-model-name": "name", "--port": "port",
                                     "-p": "port"})
        return "tei", values.get("name") or values.get("model", "unknown"), int(values.get("port") or 3000)
    tail = argv[argv.index("serve") + 1:] if "serve" in argv else argv[1:]
    try:
        args, _extra = vllm_cli.build_parser(raise_errors=True).parse_known_args(vllm_cli.normalize(tail))
        model = args.model_tag or args.model or "Qwen/Qwen3-0.6B"
        name = (args.served_model_name or [model])[0]
        return "vllm", name, int(args.port or 8000)
    except (vllm_cli.FlagError, ValueError):
        return "vllm", "unknown", 8000


WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})
LOOPBACKS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def external_host(argv: list[str]) -> str:
    """Where the gateway would reach an engine found running: the address it binds, or, for an engine
    listening on every interface, the address this node's engines are reached at. Never a fixed
    127.0.0.1: on a remote node that is the gateway's own host, not the engine's."""
    bind = _flag_values(argv, {"--host": "host", "--hostname": "host"}).get("host", "")
    return settings.PORTAL_ENGINE_HOST if bind in WILDCARDS else bind


def _flag_values(argv: list[str], wanted: dict[str, str]) -> dict[str, str]:
    values = {}
    for index, part in enumerate(argv):
        key, sep, value = part.partition("=")
        if key in wanted:
            values[wanted[key]] = value if sep else (argv[index + 1] if index + 1 < len(argv) else "")
    return values


def _externals(node: Node, instance: str) -> tuple[list[int], list[int]]:
    created, gone = [], []
    known = {(s.pid, round(s.pid_started_at or 0)): s for s in Server.objects.filter(node=node, status=S.EXTERNAL)}
    seen = set()
    for proc in processes.engine_processes():
        if processes.MARKER in proc.env or processes.INSTANCE in proc.env:
            continue  # started by a portal (this one or another on the same host)
        key = (proc.pid, round(proc.started_at))
        seen.add(key)
        if key in known:
            continue
        engine, name, port = parse_engine_argv(proc.argv)
        try:
            with transaction.atomic():
                server = Server.objects.create(node=node, served_model_name=name, port=port, status=S.EXTERNAL,
                                               host=external_host(proc.argv),
                                               engine=engine, pid=proc.pid, pid_started_at=proc.started_at,
                                               argv=redact.argv_redact(proc.argv), started_at=timezone.now(),
                                               status_reason=redact.text_redact(
                                                   f"found running as pid {proc.pid}: {proc.title[:500]}"))
        except IntegrityError:
            log.info("engine pid %s on port %s clashes with a live server row; not listed", proc.pid, port)
            continue
        lifecycle.events.send_server_status(lifecycle._payload(server))
        created.append(server.pk)
    for key, server in known.items():
        if key not in seen and not processes.alive(server.pid, server.pid_started_at):
            try:
                lifecycle.transition(server.pk, to=S.STOPPED, allowed_from=(S.EXTERNAL,), reason="process exited",
                                     stopped_at=timezone.now(), pid=None)
                gone.append(server.pk)
            except InvalidTransition:
                pass
    return created, gone


def _restarts(node: Node) -> list[int]:
    due = Server.objects.filter(node=node, status=S.FAILED, restart_policy="on-failure",
                                next_restart_at__lte=timezone.now())
    restarted = []
    for server in due.select_related("node"):
        if server.restart_attempts >= server.max_restarts:
            continue
        try:
            lifecycle.transition(server.pk, to=S.QUEUED, allowed_from=(S.FAILED,),
                                 reason=f"restart {server.restart_attempts + 1} of {server.max_restarts} "
                                        "(restart policy: on failure)",
                                 restart_attempts=server.restart_attempts + 1, next_restart_at=None)
        except InvalidTransition:
            continue
        except IntegrityError:  # its port was taken by another live server meanwhile
            Server.objects.filter(pk=server.pk).update(next_restart_at=None)
            continue
        restarted.append(server.pk)
    return restarted


def _send(task, server: Server) -> None:
    enqueue_on_node(task, server.node, server.pk)
