"""`manage.py servers list|start PROFILE [--node N --port P | --nodes LEADER,FOLLOWER]|stop ID|groups|stop-group ID|
sleep ID [--level 2]|wake ID|swap A B|logs ID`: the Servers page on a terminal."""
import time

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import logs, selectors, services
from servers.models import Server, ServerGroup
from sparkportal.exceptions import ApplicationError


class Command(BaseCommand):
    help = "List, start, stop servers and read their logs; several servers at once are fine."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="username", default="",
                            help="Act as this operator or admin (audited); default: the first admin.")
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("list", help="All servers with node, port, status")
        start = sub.add_parser("start", help="Start a server from a profile")
        start.add_argument("profile")
        start.add_argument("--node", default=None)
        start.add_argument("--nodes", default="", help="A multi-node profile's nodes, comma-separated, the leader "
                                                       "first (default: the portal picks them)")
        start.add_argument("--port", type=int, default=None)
        start.add_argument("--gpu-memory-utilization", type=float, default=None)
        start.add_argument("--restart-policy", choices=["never", "on-failure"], default="never")
        start.add_argument("--replica", action="store_true", help="Allow another replica of a running profile")
        start.add_argument("--wait", action="store_true", help="Wait until ready or failed")
        sub.add_parser("groups", help="Multi-node servers with their ranks")
        check = sub.add_parser("preflight", help="Check a multi-node profile's network on its nodes; starts nothing")
        check.add_argument("profile")
        check.add_argument("--nodes", default="", help="Comma-separated, the leader first (default: the portal "
                                                       "picks them)")
        stop_group = sub.add_parser("stop-group", help="Stop every rank of a multi-node server")
        stop_group.add_argument("group_id", type=int)
        stop_group.add_argument("--wait", action="store_true")
        stop = sub.add_parser("stop", help="Stop a server")
        stop.add_argument("server_id", type=int)
        stop.add_argument("--wait", action="store_true")
        sleep = sub.add_parser("sleep", help="Put a server to sleep (its profile enables sleep mode)")
        sleep.add_argument("server_id", type=int)
        sleep.add_argument("--level", type=int, choices=[1, 2], default=1)
        sleep.add_argument("--wait", action="store_true", help="Wait until the engine confirms")
        wake = sub.add_parser("wake", help="Wake a sleeping server")
        wake.add_argument("server_id", type=int)
        wake.add_argument("--wait", action="store_true")
        swap = sub.add_parser("swap", help="Put server A to sleep and wake server B in its place")
        swap.add_argument("sleep_id", type=int)
        swap.add_argument("wake_id", type=int)
        swap.add_argument("--level", type=int, choices=[1, 2], default=1)
        swap.add_argument("--wait", action="store_true")
        logs = sub.add_parser("logs", help="The last lines of a server's log")
        logs.add_argument("server_id", type=int)
        logs.add_argument("--lines", type=int, default=200)
        logs.add_argument("--grep", default="")

    def handle(self, *args, verb, username, **opts):
        try:
            getattr(self, f"do_{verb.replace('-', '_')}")(self._actor(username), **opts)
        except (ApplicationError, PermissionDenied) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc

    def _actor(self, username: str) -> User:
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            return user
        user = User.objects.filter(role="admin").order_by("pk").first() or \
            User.objects.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise CommandError("No admin exists yet: run `python manage.py ensure_admin` or pass --as USERNAME.")
        return user

    def do_list(self, user, **opts):
        rows = selectors.server_list_visible(user=user)
        self.stdout.write(f"{'ID':>4}  {'MODEL':<30} {'NODE:PORT':<22} {'STATUS':<9} REASON")
        for s in rows:
            self.stdout.write(f"{s.pk:>4}  {s.served_model_name[:30]:<30} {f'{s.node.name}:{s.port}':<22} "
                              f"{s.status:<9} {s.status_reason[:70]}")

    def do_start(self, user, *, profile, node, port, gpu_memory_utilization, restart_policy, replica, wait, nodes,
                 **opts):
        prof = ModelProfile.objects.filter(name=profile).first()
        if prof is None:
            names = ", ".join(ModelProfile.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No profile named {profile!r} (profiles: {names}).")
        if prof.node_count > 1:
            return self._start_group(user, prof, nodes, gpu_memory_utilization, restart_policy, replica, wait)
        nodes = Node.objects.filter(name=node) if node else Node.objects.all()
        if node and not nodes.exists():
            known = ", ".join(Node.objects.values_list("name", flat=True))
            raise CommandError(f"No node named {node!r} (nodes: {known}).")
        if not node and nodes.count() != 1:
            raise CommandError("Say which node with --node: " + (", ".join(nodes.values_list("name", flat=True)) or
                                                                   "no node is registered yet."))
        server = services.server_start(user=user, profile=prof, node=nodes.first(), port=port,
                                       gpu_memory_utilization=gpu_memory_utilization, restart_policy=restart_policy,
                                       allow_replica=replica)
        self.stdout.write(f"server {server.pk} queued on {server.node.name}:{server.port}")
        if wait:
            server = self._wait(server, ("ready", "failed", "stopped"))
            self.stdout.write(f"server {server.pk} {server.status}: {server.status_reason}")
            if server.status != "ready":
                raise CommandError(f"server {server.pk} {server.status}: {server.status_reason}")

    def _start_group(self, user, prof, nodes, gpu_memory_utilization, restart_policy, replica, wait):
        names = [n.strip() for n in nodes.split(",") if n.strip()]
        chosen = [self._node(name) for name in names] or None
        group = services.group_start(user=user, profile=prof, nodes=chosen, restart_policy=restart_policy,
                                     gpu_memory_utilization=gpu_memory_utilization, allow_replica=replica)
        ranks = ", ".join(f"rank {s.rank} on {s.node.name}"
                          for s in group.ranks.select_related("node").order_by("rank"))
        self.stdout.write(f"group {group.pk} queued: {ranks}; master {group.master_addr}:{group.master_port}")
        if wait:
            group = self._wait_group(group, ("ready", "failed", "stopped"))
            self.stdout.write(f"group {group.pk} {group.status}: {group.status_reason}")
            if group.status != "ready":
                raise CommandError(f"group {group.pk} {group.status}: {group.status_reason}")

    def _node(self, name: str) -> Node:
        node = Node.objects.filter(name=name).first()
        if node is None:
            known = ", ".join(Node.objects.values_list("name", flat=True))
            raise CommandError(f"No node named {name!r} (nodes: {known}).")
        return node

    def do_preflight(self, user, *, profile, nodes, **opts):
        prof = ModelProfile.objects.filter(name=profile).first()
        if prof is None:
            raise CommandError(f"No profile named {profile!r}.")
        chosen = [self._node(n.strip()) for n in nodes.split(",") if n.strip()] or None
        result = services.group_preflight(user=user, profile=prof, nodes=chosen)
        for report in result["reports"]:
            reach = "" if report.get("reaches") is None else f", reaches {report['leader']}: {report['reaches']}"
            self.stdout.write(f"rank {report.get('rank')} {report['node']}: {'ok' if report.get('ok') else 'FAILED'}"
                              f" (interface {report.get('interface') or 'default'}{reach}) "
                              f"{report.get('problem') or ''}".rstrip())
        if not result["ok"]:
            raise CommandError(f"preflight failed for master {result['master']}")
        self.stdout.write(f"preflight ok: master {result['master']}")

    def do_groups(self, user, **opts):
        self.stdout.write(f"{'ID':>4}  {'MODEL':<30} {'MASTER':<22} {'STATUS':<9} RANKS")
        for g in selectors.group_list_visible(user=user):
            ranks = " ".join(f"{s.rank}:{s.node.name}/{s.status}" for s in sorted(g.ranks.all(), key=lambda s: s.rank))
            self.stdout.write(f"{g.pk:>4}  {g.served_model_name[:30]:<30} {f'{g.master_addr}:{g.master_port}':<22} "
                              f"{g.status:<9} {ranks}")

    def do_stop_group(self, user, *, group_id, wait, **opts):
        if not ServerGroup.objects.filter(pk=group_id).exists():
            raise CommandError(f"There is no multi-node group {group_id}: see `manage.py servers groups`.")
        group = services.group_stop(user=user, group=selectors.group_get_visible(user=user, group_id=group_id))
        self.stdout.write(f"group {group.pk} {group.status}")
        if wait:
            group = self._wait_group(group, ("stopped", "failed"))
            self.stdout.write(f"group {group.pk} {group.status}: {group.status_reason}")

    def _wait_group(self, group, statuses, timeout: float = 1800):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            group.refresh_from_db()
            if group.status in statuses:
                return group
            time.sleep(0.5)
        raise CommandError(f"group {group.pk} is still {group.status} after {timeout:.0f} s")

    def do_stop(self, user, *, server_id, wait, **opts):
        server = selectors.server_get_visible(user=user, server_id=server_id) if Server.objects.filter(
            pk=server_id).exists() else None
        if server is None:
            raise CommandError(f"There is no server {server_id}: see `manage.py servers list`.")
        server = services.server_stop(user=user, server=server)
        self.stdout.write(f"server {server.pk} {server.status}")
        if wait:
            server = self._wait(server, ("stopped", "failed"))
            self.stdout.write(f"server {server.pk} {server.status}: {server.status_reason}")

    def _server(self, user, server_id: int) -> Server:
        if not Server.objects.filter(pk=server_id).exists():
            raise CommandError(f"There is no server {server_id}: see `manage.py servers list`.")
        return selectors.server_get_visible(user=user, server_id=server_id)

    def do_sleep(self, user, *, server_id, level, wait, **opts):
        server = services.server_sleep(user=user, server=self._server(user, server_id), level=level)
        self.stdout.write(f"server {server.pk} {server.status} (level {level})")
        if wait:
            server = self._wait_until(server, lambda s: s.status != "sleeping" or s.slept_at is not None)
            self.stdout.write(f"server {server.pk} {server.status}: {server.status_reason}")
            if server.status != "sleeping":
                raise CommandError(f"server {server.pk} {server.status}: {server.status_reason}")

    def do_wake(self, user, *, server_id, wait, **opts):
        server = services.server_wake(user=user, server=self._server(user, server_id))
        self._report_wake(server, wait)

    def do_swap(self, user, *, sleep_id, wake_id, level, wait, **opts):
        server = services.server_swap(user=user, sleep=self._server(user, sleep_id), wake=self._server(user, wake_id),
                                      level=level)
        self.stdout.write(f"server {sleep_id} going to sleep (level {level})")
        self._report_wake(server, wait)

    def _report_wake(self, server, wait: bool) -> None:
        self.stdout.write(f"server {server.pk} {server.status}")
        if wait:
            server = self._wait(server, ("ready", "sleeping", "failed", "stopped"))
            self.stdout.write(f"server {server.pk} {server.status}: {server.status_reason}")
            if server.status != "ready":
                raise CommandError(f"server {server.pk} {server.status}: {server.status_reason}")

    def do_logs(self, user, *, server_id, lines, grep, **opts):
        server = Server.objects.filter(pk=server_id).select_related("node").first()
        if server is None:
            raise CommandError(f"There is no server {server_id}: see `manage.py servers list`.")
        for line in logs.server_log_lines(server=server, lines=lines, query=grep):
            self.stdout.write(line)

    def _wait(self, server, statuses, timeout: float = 1800):
        return self._wait_until(server, lambda s: s.status in statuses, timeout)

    def _wait_until(self, server, done, timeout: float = 1800):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server.refresh_from_db()
            if done(server):
                return server
            time.sleep(0.5)
        raise CommandError(f"server {server.pk} is still {server.status} after {timeout:.0f} s")
