"""python manage.py backup DEST: the database and the state in var/ that cannot be rebuilt, in one folder.

What is kept (docs/OPERATIONS.md "Backups" says why each and what is left out):
  database.sqlite3 or database.pgdump   the database (SQLite's online backup API; pg_dump -Fc on PostgreSQL)
  var/secret_key                         signs sessions and seals hub tokens (absent when SECRET_KEY(_FILE) is set)
  var/classifier/                        embedding indexes, examples' vectors and uploads of classifier jobs
  MANIFEST.json                          what was written, from which database, when
Weights (HF_HOME), logs, static files and Redis are left out: they are downloaded, rebuilt or transient.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

VAR_ITEMS = ("secret_key", "classifier")


def database_dump(dest: Path) -> Path:
    """A consistent copy of the live database into `dest`; returns the file written."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        target = dest / "database.sqlite3"
        with sqlite3.connect(db["NAME"]) as source, sqlite3.connect(target) as copy:
            source.backup(copy)  # online: readers and writers may go on meanwhile
        return target
    if db["ENGINE"].endswith("postgresql"):
        target = dest / "database.pgdump"
        env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
        argv = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--host={db['HOST'] or 'localhost'}",
                f"--port={db['PORT'] or 5432}", f"--username={db['USER']}", db["NAME"]]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CommandError(f"pg_dump failed: {result.stderr.strip()}")
        return target
    raise CommandError(f"No backup recipe for {db['ENGINE']}.")


def var_copy(dest: Path) -> list[str]:
    copied = []
    for name in VAR_ITEMS:
        source = Path(settings.VAR_DIR) / name
        if source.is_dir():
            shutil.copytree(source, dest / "var" / name, symlinks=True)
        elif source.is_file():
            (dest / "var").mkdir(exist_ok=True)
            shutil.copy2(source, dest / "var" / name)
        else:
            continue
        copied.append(f"var/{name}")
    return copied


class Command(BaseCommand):
    help = "Back up the database and var/'s secret key and classifier indexes into a new folder DEST."

    def add_arguments(self, parser):
        parser.add_argument("dest", help="a folder that does not exist yet")

    def handle(self, *args, **opts):
        dest = Path(opts["dest"]).resolve()
        if dest.exists():
            raise CommandError(f"{dest} exists: back up into a new folder.")
        dest.mkdir(parents=True)
        database = database_dump(dest)
        copied = var_copy(dest)
        manifest = {"created_at": timezone.now().isoformat(), "engine": connection.vendor, "database": database.name,
                    "var": copied, "migrations": _migration_heads()}
        (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
        self.stdout.write(f"Backed up {database.name} and {', '.join(copied) or 'nothing of var/'} into {dest}")


def _migration_heads() -> dict[str, str]:
    """The last applied migration of each app: a restore must run code at least this new."""
    from django.db.migrations.recorder import MigrationRecorder

    heads: dict[str, str] = {}
    for app, name in MigrationRecorder(connection).applied_migrations():
        heads[app] = max(heads.get(app, ""), name)
    return heads
