"""`manage.py bench run PLAN` / `bench list` / `bench compare RUN RUN ...` / `bench loadgen --base-url URL`."""
import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from accounts.models import User
from benchmarks import loadgen, selectors, services
from benchmarks.models import SUMMARY_METRICS, BenchmarkRun
from sparkportal.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Run benchmark plans, list plans and runs, compare runs, or load-test any OpenAI-style endpoint."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="Queue a run of a plan (name or id) and follow it until it ends.")
        run.add_argument("plan")
        run.add_argument("--user", default="", help="Operator recorded in the audit log (default: the CLI).")
        run.add_argument("--no-wait", action="store_true", help="Print the run id and return at once.")
        sub.add_parser("list", help="List plans and the latest runs.")
        compare = sub.add_parser("compare", help="Compare runs side by side, with warnings.")
        compare.add_argument("runs", nargs="+", type=int)
        compare.add_argument("--format", choices=["table", "csv", "json"], default="table")
        load = sub.add_parser("loadgen", help="The built-in load generator against any endpoint; prints result JSON.")
        load.add_argument("--base-url", required=True)
        load.add_argument("--model", required=True)
        load.add_argument("--backend", default="openai", choices=["openai", "openai-chat", "openai-embeddings"])
        load.add_argument("--num-prompts", type=int, default=100)
        load.add_argument("--input-len", type=int, default=512)
        load.add_argument("--output-len", type=int, default=256)
        load.add_argument("--request-rate", type=float, default=None)
        load.add_argument("--max-concurrency", type=int, default=None)
        load.add_argument("--num-warmups", type=int, default=0)
        load.add_argument("--api-key", default="")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except (ApplicationError, Http404) as exc:
            raise CommandError(getattr(exc, "message", None) or str(exc)) from None

    def _run(self, options):
        plan = selectors.plan_get_by_name_or_id(ref=options["plan"])
        actor = None
        if options["user"]:
            actor = User.objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"No user {options['user']!r}.")
            if not actor.is_operator:
                raise CommandError(f"{actor.username} is not an operator: only operators and admins run benchmarks.")
        run = services.run_create(plan=plan, actor=actor)
        self.stdout.write(f"run {run.pk} of {plan.name} queued")
        if options["no_wait"]:
            return
        last = ""
        while True:
            run.refresh_from_db()
            p = run.progress or {}
            line = (f"{run.status}: {p.get('phase', '')} {p.get('profile', '')} "
                    f"({p.get('profile_index', 0)}/{p.get('profiles_total', 0)}) repeat {p.get('repeat', 0)}/"
                    f"{p.get('repeats', 0)} eta {p.get('eta_s')}")
            if line != last and run.status == BenchmarkRun.Status.RUNNING:
                self.stdout.write(line)
                last = line
            if run.is_finished:
                break
            time.sleep(1)
        self.stdout.write(f"run {run.pk} {run.status}: {run.message}")
        self._table([run.pk])
        if run.status != BenchmarkRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}")

    def _list(self, options):
        self.stdout.write("plans:")
        for plan in selectors.plan_list():
            profiles = ", ".join(e.profile.name for e in plan.entries.all())
            node = plan.node.name if plan.node_id else "this host"
            self.stdout.write(f"  {plan.pk:>4} {plan.name:<30} {plan.warmups} warm-ups, {plan.repeats} repeats, "
                              f"{plan.tool} on {node}: {profiles}")
        self.stdout.write("runs:")
        for run in selectors.run_list()[:20]:
            self.stdout.write(f"  {run.pk:>4} {run.plan_name:<30} {run.status:<10} {run.trigger:<8} "
                              f"{run.created_at:%Y-%m-%d %H:%M} {run.message}")

    def _compare(self, options):
        if options["format"] == "table":
            self._table(options["runs"])
            return
        table = selectors.compare(run_ids=options["runs"])
        out = selectors.export_csv(table["dicts"]) if options["format"] == "csv" else selectors.export_json(
            table["dicts"])
        self.stdout.write(out)

    def _table(self, run_ids):
        table = selectors.compare(run_ids=run_ids)
        head = f"{'run':>4} {'profile':<24}" + "".join(f"{label:>16}" for _k, label, _u in SUMMARY_METRICS) + \
            f"{'spread %':>10}"
        self.stdout.write(head)
        for row in table["dicts"]:
            cells = "".join(f"{row[k]:>16.2f}" if row[k] is not None else f"{'—':>16}" for k, _l, _u in SUMMARY_METRICS)
            spread = f"{row['spread_pct']:>10.1f}" if row["spread_pct"] is not None else f"{'—':>10}"
            self.stdout.write(f"{row['run_id']:>4} {row['profile']:<24}{cells}{spread}")
        for warning in table["warnings"]:
            self.stdout.write(f"warning: {warning}")

    def _loadgen(self, options):
        endpoints = {"openai": "/v1/completions", "openai-chat": "/v1/chat/completions",
                     "openai-embeddings": "/v1/embeddings"}
        spec = loadgen.LoadSpec(base_url=options["base_url"], model=options["model"], backend=options["backend"],
                                endpoint=endpoints[options["backend"]], num_prompts=options["num_prompts"],
                                input_len=options["input_len"], output_len=options["output_len"],
                                request_rate=options["request_rate"], max_concurrency=options["max_concurrency"],
                                num_warmups=options["num_warmups"], api_key=options["api_key"])
        result = loadgen.run_load_sync(spec)
        self.stdout.write(json.dumps({k: v for k, v in result.items()
                                      if not isinstance(v, list)}, indent=1))
