"""python manage.py classify TAXONOMY PATH [--depth 2] [--out results.csv] [--examples labeled.csv]"""
import sys
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from classifier import evaluation, pipeline, results_export, selectors, services
from classifier.archive import scan
from classifier.taxonomy import yaml_import
from sparkportal.exceptions import ApplicationError
from sparkportal.lib.csvsafe import SafeDictWriter


class Command(BaseCommand):
    help = ("Classify the files under PATH into TAXONOMY (an imported taxonomy's name, or a YAML file that is "
            "imported on the fly) and write one CSV row per file. PATH need not be under PORTAL_CLASSIFIER_ROOTS: "
            "the roots guard the web and the API, and the shell user can read PATH anyway.")

    def add_arguments(self, parser):
        parser.add_argument("taxonomy")
        parser.add_argument("path")
        parser.add_argument("--depth", type=int, default=2)
        parser.add_argument("--out", help="CSV file to write (default: standard output)")
        parser.add_argument("--embedder")
        parser.add_argument("--margin", type=float)
        parser.add_argument("--rerank-model", default=None)
        parser.add_argument("--user", help="owner of the job (default: the first admin)")
        parser.add_argument("--examples", help="labeled CSV (path or text, expected code): stored as examples of "
                                               "their classes before the job runs")
        parser.add_argument("--no-examples", action="store_true", help="labels only (zero-shot)")

    def handle(self, *args, **opts):
        path = Path(opts["path"])
        if not path.exists():
            raise CommandError(f"{opts['path']} does not exist.")
        with scan.command_line_root(path):
            self._classify(opts)

    def _classify(self, opts: dict) -> None:
        user = self._user(opts["user"])
        try:
            version = self._version(opts["taxonomy"], user)
            if opts["examples"]:
                self._examples(opts["examples"], user, version)
            job = services.job_create(owner=user, version=version, source_path=str(Path(opts["path"]).resolve()),
                                      depth=opts["depth"], embedder=opts["embedder"], margin=opts["margin"],
                                      rerank_model=opts["rerank_model"], use_examples=not opts["no_examples"],
                                      enqueue=False)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        job = pipeline.job_run(job_id=job.pk)
        if job.status != job.Status.DONE:
            raise CommandError(f"job {job.pk} {job.status}: {job.status_reason}")
        out = open(opts["out"], "w", newline="", encoding="utf-8") if opts["out"] else sys.stdout  # noqa: SIM115
        try:
            writer = SafeDictWriter(out, fieldnames=results_export.FIELDS)
            writer.writeheader()
            writer.writerows(results_export.rows(selectors.result_list(job=job)))
        finally:
            if out is not sys.stdout:
                out.close()
        self.stderr.write(f"job {job.pk}: {job.files_done} files, {job.files_skipped} skipped, "
                          f"rerank share {job.rerank_share:.0%}")

    def _examples(self, path: str, user, version) -> None:
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"{path}: no such file.")
        rows = evaluation.parse_labeled_csv(evaluation.decode_labeled_csv(file.read_bytes(), name=path))
        added = services.examples_import(actor=user, taxonomy=version.taxonomy, rows=rows)
        self.stderr.write(f"{path}: {len(rows)} labeled rows, {added} new examples")

    def _user(self, username):
        qs = User.objects.filter(username=username) if username else User.objects.filter(role="admin").order_by("pk")
        user = qs.first()
        if user is None:
            raise CommandError(f"No user {username!r}." if username else "No admin user exists; pass --user NAME.")
        return user

    def _version(self, taxonomy: str, user):
        path = Path(taxonomy)
        if path.suffix in (".yaml", ".yml") or path.is_file():
            if not path.is_file():
                raise CommandError(f"{taxonomy}: no such file.")
            if path.stat().st_size > yaml_import.MAX_BYTES:
                raise yaml_import.too_large()
            return services.taxonomy_import(actor=user, name=path.stem.lower().replace(".", "-"),
                                            yaml_text=yaml_import.decode(path.read_bytes(), name=taxonomy))
        try:
            return selectors.version_get(taxonomy=selectors.taxonomy_get(name=taxonomy))
        except Exception:  # noqa: BLE001 - Http404 from the selector
            raise CommandError(f"No taxonomy named {taxonomy!r}: import one or pass a YAML file.") from None
