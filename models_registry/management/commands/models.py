"""`manage.py models list | catalog | add-from-catalog NAME | download NAME [--node N] |
delete-weights NAME [--node N] | weights [--node N]`."""
import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from models_registry import selectors, services
from models_registry.models import Download, WeightsDeletion
from sparkportal.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Model profiles, the catalog, downloads and weights from the terminal."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="username", default="",
                            help="Portal user the audit log names for changes (default: the first admin).")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="Profiles and whether their weights are on this node.")
        sub.add_parser("catalog", help="Catalog entries with size on disk and estimated memory.")
        add = sub.add_parser("add-from-catalog", help="Create a profile from a catalog entry.")
        add.add_argument("name")
        add.add_argument("--profile-name", default=None)
        dl = sub.add_parser("download", help="Download a profile's weights on a node (joins a running download).")
        dl.add_argument("name", help="profile name")
        dl.add_argument("--node", default="", help="node name (default: this host)")
        dl.add_argument("--wait", action="store_true", help="follow the progress until it ends")
        dl.add_argument("--foreground", action="store_true", help="download in this process instead of a worker")
        rm = sub.add_parser("delete-weights", help="Delete a profile's weights from a node's cache (by its worker).")
        rm.add_argument("name", help="profile name")
        rm.add_argument("--node", default="", help="node name (default: this host)")
        rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        rm.add_argument("--foreground", action="store_true",
                        help="delete in this process (this host's node only) instead of through the node's worker")
        rm.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node's worker")
        ws = sub.add_parser("weights", help="Weights on disk per node, from each node's latest scan.")
        ws.add_argument("--node", default="", help="only this node")
        ws.add_argument("--scan", action="store_true", help="scan this host's cache now (in this process) first")

    def handle(self, *args, **opts):
        try:
            getattr(self, "do_" + opts["action"].replace("-", "_"))(opts)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _actor(self, opts) -> User | None:
        if opts["username"]:
            user = User.objects.filter(username=opts["username"]).first()
            if user is None:
                raise CommandError(f"No portal user {opts['username']!r}: pass an existing username to --as.")
            return user
        return User.objects.filter(role=User.Role.ADMIN).order_by("pk").first() or \
            User.objects.filter(is_superuser=True).order_by("pk").first()

    def _profile(self, name: str):
        profile = selectors.profile_list(user=None).filter(name=name).first()
        if profile is None:
            names = ", ".join(selectors.profile_list(user=None).values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No profile named {name!r}. Profiles: {names}. "
                               "Add one with `models add-from-catalog NAME`.")
        return profile

    def do_list(self, opts):
        latest = selectors.latest_downloads_by_repo(node=services.node_resolve(None))
        rows = [("NAME", "SOURCE", "ENGINE", "TASK", "MODEL NAME", "UTIL", "WEIGHTS")]
        for p in selectors.profile_list(user=None):
            d = latest.get(p.repo_id)
            state = "local folder" if p.source == "local" else (f"{d.status} {d.percent}%" if d else "not downloaded")
            rows.append((p.name, p.local_path or p.repo_id, p.engine, p.task, p.model_name,
                         f"{p.gpu_memory_utilization:g}", state))
        self._table(rows)

    def do_catalog(self, opts):
        rows = [("NAME", "REPO", "ENGINE", "TASK", "SIZE GB", "EST. MEMORY GB", "ADDED")]
        for e in services.catalog_rows():
            rows.append((e["name"], e["repo_id"], e["engine"], e["task"], f"{e.get('size_gb') or '?'}",
                         f"{e['estimated_memory_gb'] or '?'}", "yes" if e["added"] else ""))
        self._table(rows)

    def do_add_from_catalog(self, opts):
        profile = services.catalog_add(name=opts["name"], actor=self._actor(opts), profile_name=opts["profile_name"])
        self.stdout.write(f"Profile {profile.name} created from the catalog ({profile.repo_id}).")

    def do_download(self, opts):
        profile = self._profile(opts["name"])
        node = services.node_resolve(opts["node"] or None)
        download, joined = services.download_request(actor=self._actor(opts), node=node, profile=profile)
        verb = "Joined the running" if joined else "Queued a"
        self.stdout.write(f"{verb} download #{download.pk} of {download.repo_id} on {node.name}.")
        if opts["foreground"]:
            services.download_run(download_id=download.pk)
        if opts["wait"] or opts["foreground"]:
            self._follow(download.pk)

    def _follow(self, download_id: int) -> None:
        while True:
            d = Download.objects.get(pk=download_id)
            self.stdout.write(f"  {d.status}: {d.percent}% {d.bytes_done / 1e9:.2f}/{d.bytes_total / 1e9:.2f} GB "
                              f"{d.rate_bps / 1e6:.1f} MB/s {d.current_file}")
            if d.status not in Download.ACTIVE:
                if d.status == Download.Status.FAILED:
                    raise CommandError(d.error)
                return
            time.sleep(1)

    def do_delete_weights(self, opts):
        profile = self._profile(opts["name"])
        if profile.source != "hub":
            raise CommandError(f"Profile {profile.name} uses the local folder {profile.local_path}: the portal does "
                               "not delete folders it did not download.")
        node = services.node_resolve(opts["node"] or None)
        if not opts["yes"]:
            answer = input(f"Delete the weights of {profile.repo_id} from {node.name}? Type the repo id to confirm: ")
        else:
            answer = profile.repo_id
        deletion, _joined = services.weights_delete_request(node=node, repo_id=profile.repo_id,
                                                            confirm=answer.strip(), actor=self._actor(opts))
        if opts["foreground"]:
            services.weights_deletion_run(deletion_id=deletion.pk)
        deletion = self._wait_deletion(deletion.pk, node, opts["timeout"])
        if deletion.status == WeightsDeletion.Status.FAILED:
            raise CommandError(deletion.error)
        freed = deletion.freed_bytes
        size = f"{freed / 1e9:.2f} GB" if freed >= 1e8 else f"{freed / 1e6:.1f} MB"
        self.stdout.write(f"Deleted the weights of {profile.repo_id} on {node.name}: {size} freed.")

    def _wait_deletion(self, deletion_id: int, node, timeout: float) -> WeightsDeletion:
        deadline = time.monotonic() + timeout
        while True:
            deletion = WeightsDeletion.objects.get(pk=deletion_id)
            if deletion.status not in WeightsDeletion.ACTIVE:
                return deletion
            if time.monotonic() > deadline:
                raise CommandError(f"No answer from {node.name}'s worker within {timeout:g} s: is it running (it "
                                   f"consumes {node.queue})? The deletion #{deletion_id} stays queued; run again "
                                   "with --foreground on that host to do it there.")
            time.sleep(0.5)

    def do_weights(self, opts):
        if opts["scan"]:
            services.weights_scan_run(node_id=services.node_resolve(None).pk)
        if opts["node"]:
            services.node_resolve(opts["node"])
        for entry in selectors.weights_overview(user=None, node_name=opts["node"]):
            when = entry["scanned_at"].strftime("%Y-%m-%d %H:%M:%S") if entry["scanned_at"] else "never"
            free = f", {entry['free_gb']} GB free of {entry['total_gb']} GB" if entry["free_gb"] is not None else ""
            self.stdout.write(f"{entry['node'].name}: listed {when}{free}" + (f" — {entry['error']}"
                                                                            if entry["error"] else ""))
            rows = [("  REPO", "SIZE GB", "PROFILES", "USED BY")]
            for r in entry["rows"]:
                rows.append(("  " + r["repo_id"], f"{r['size_gb']}", ", ".join(r["profiles"]) or "(none)",
                             ", ".join(r["in_use"]) or "-"))
            self._table(rows)

    def _table(self, rows) -> None:
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
