"""`manage.py models list | catalog | add-from-catalog NAME | download NAME [--node N] | delete-weights NAME`."""
import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from models_registry import selectors, services
from models_registry.models import Download
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
        rm = sub.add_parser("delete-weights", help="Delete a profile's weights from this node's cache.")
        rm.add_argument("name", help="profile name")
        rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")

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
        if not opts["yes"]:
            answer = input(f"Delete the weights of {profile.repo_id} from this node? Type the repo id to confirm: ")
        else:
            answer = profile.repo_id
        freed = services.weights_delete(repo_id=profile.repo_id, confirm=answer.strip(), actor=self._actor(opts),
                                        node=services.node_resolve(None))
        self.stdout.write(f"Deleted the weights of {profile.repo_id}: {freed / 1e9:.2f} GB freed.")

    def _table(self, rows) -> None:
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
