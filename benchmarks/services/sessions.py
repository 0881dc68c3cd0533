"""A profile's server session for a benchmark: reuse a running server or start one, and stop
only what the run started. All process control goes through the servers app's supervisor."""
import time
from collections.abc import Callable

from django.conf import settings

from accounts.models import User
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import services as server_services
from servers.models import Server

LIVE = ("queued", "starting", "ready")


class SessionError(Exception):
    """The server could not be had; the message says why in words."""


def _node(name: str = "") -> Node:
    """The node the plan names; by default this host's node (the portal's own box), else the first one."""
    if name:
        node = Node.objects.filter(name=name).first()
        if node is None:
            raise SessionError(f"Node {name!r} named by the plan is not registered any more: edit the plan.")
        return node
    node = Node.objects.filter(name=settings.NODE_NAME).first() or Node.objects.order_by("name").first()
    if node is None:
        raise SessionError("No node is registered yet: start a worker on a GPU host (see the README).")
    return node


def acquire(*, profile: ModelProfile, actor: User | None, node_name: str = "") -> tuple[Server, bool]:
    """(server, started_by_us): a ready server of the profile if there is one, else a new start.

    A plan that names a node uses only servers on that node: numbers from another box would not be
    the ones asked for.
    """
    ready = Server.objects.filter(profile=profile, status="ready", rank=0)  # a multi-node server by its leader
    if node_name:
        ready = ready.filter(node__name=node_name)
    running = ready.order_by("pk").first()
    if running is not None:
        return running, False
    if actor is None:
        raise SessionError(f"Nobody to start profile {profile.name} on behalf of: the plan has no owner left. "
                           "Save the plan again as an operator.")
    # A second server of the profile would be refused while one sleeps: wake that one (the run leaves it awake).
    sleeper = Server.objects.filter(profile=profile, status="sleeping").filter(
        **({"node__name": node_name} if node_name else {})).order_by("pk").first()
    if sleeper is not None:
        return server_services.server_wake(user=actor, server=sleeper), False
    if profile.node_count > 1:
        return _start_group(profile=profile, actor=actor, node_name=node_name), True
    server = server_services.server_start(user=actor, profile=profile, node=_node(node_name))
    return server, True


def _start_group(*, profile: ModelProfile, actor: User, node_name: str) -> Server:
    """A multi-node profile starts on nodes the portal picks (a plan's node, when named, leads); its leader is the
    server the run measures and stops (which stops the whole group)."""
    nodes = None
    if node_name:
        others = Node.objects.exclude(name=node_name).exclude(host_ip=None).order_by("name")[:profile.node_count - 1]
        nodes = [_node(node_name), *others]
    group = server_services.group_start(user=actor, profile=profile, nodes=nodes)
    return group.ranks.select_related("node").get(rank=0)


def wait_ready(*, server: Server, should_stop: Callable[[], bool],
               on_wait: Callable[[float], None] | None = None) -> Server:
    """Poll the supervisor's record until the server is ready; raise SessionError if it fails."""
    begin = time.monotonic()
    deadline = begin + settings.BENCHMARK_SERVER_READY_TIMEOUT_S
    while True:
        server.refresh_from_db()
        if server.status == "ready":
            return server
        if server.status in ("failed", "stopped", "sleeping"):
            reason = server.status_reason or "no reason recorded"
            raise SessionError(f"The server of profile {server.profile or server.served_model_name} {server.status} "
                               f"before it was ready: {reason}")
        if should_stop():
            raise SessionError("cancelled while the server was starting")
        if time.monotonic() > deadline:
            raise SessionError(f"The server was not ready after {settings.BENCHMARK_SERVER_READY_TIMEOUT_S} s; "
                               "see its log on the Servers page.")
        if on_wait:
            on_wait(time.monotonic() - begin)
        time.sleep(0.3)


def release(*, server: Server, actor: User | None) -> Server:
    """Stop a server the run started and wait until the supervisor reports it gone."""
    server.refresh_from_db()
    if server.status in ("stopped", "failed"):
        return server
    server_services.server_stop(user=actor, server=server)
    deadline = time.monotonic() + server.node.stop_timeout_s + 20
    while time.monotonic() < deadline:
        server.refresh_from_db()
        if server.status in ("stopped", "failed"):
            return server
        time.sleep(0.3)
    raise SessionError(f"Server {server} did not stop within {server.node.stop_timeout_s + 20} s.")
