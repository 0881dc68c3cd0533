"""`manage.py backup` writes the database and var/'s state; the copy restores into a working portal."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from accounts import services as account_services
from tests.conftest import subprocess_env

BASE_DIR = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def _count_users(env: dict) -> str:
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                             "from accounts.models import User, ApiKey; "
                             "print(User.objects.count(), ApiKey.objects.filter(name='laptop').count())"],
                            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-2:]


def _pg_restore(dump: Path, url: str) -> None:
    # A PostgreSQL portal's backups are pg_dump files: without the client tools there is nothing to test.
    assert shutil.which("pg_restore"), "PostgreSQL backups need its client tools: apt-get install postgresql-client"
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    subprocess.run(["pg_restore", "--no-owner", f"--host={db['HOST'] or 'localhost'}", f"--port={db['PORT'] or 5432}",
                    f"--username={db['USER']}", f"--dbname={url.rsplit('/', 1)[1]}", str(dump)], env=env, check=True,
                   timeout=300)


def test_a_backup_restores_into_a_working_portal(admin_user, scratch_database_url, tmp_path):
    account_services.api_key_create(owner=admin_user, name="laptop")
    index = Path(settings.VAR_DIR) / "classifier" / "index" / "backup-probe.bin"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_bytes(b"vectors")
    try:
        call_command("backup", str(tmp_path / "bk"))
    finally:
        index.unlink()
    manifest = json.loads((tmp_path / "bk" / "MANIFEST.json").read_text())
    assert "var/classifier" in manifest["var"] and "accounts" in manifest["migrations"]
    assert (tmp_path / "bk" / "var" / "classifier" / "index" / "backup-probe.bin").read_bytes() == b"vectors"
    dump = tmp_path / "bk" / manifest["database"]
    if connection.vendor == "sqlite":
        shutil.copy(dump, scratch_database_url.removeprefix("sqlite:///"))
    else:
        _pg_restore(dump, scratch_database_url)
    env = subprocess_env(DATABASE_URL=scratch_database_url, PORTAL_VAR_DIR=str(tmp_path / "var"))
    subprocess.run([sys.executable, "manage.py", "migrate", "--check"], cwd=BASE_DIR, env=env, check=True,
                   capture_output=True, timeout=120)
    assert _count_users(env) == ["1", "1"]
