"""An upgrade migrates a database made by the previous release's schema, keeping its rows.

A fresh database (a file on SQLite, a new database beside the test one on PostgreSQL) is migrated to the
previous release's migrations (tests/fixtures/previous_schema.json), filled through that state's historical
models, then `manage.py migrate` runs to head as an upgrade would.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

BASE_DIR = Path(__file__).resolve().parents[2]
PREVIOUS = BASE_DIR / "tests" / "fixtures" / "previous_schema.json"
pytestmark = pytest.mark.django_db(transaction=True)

AT_PREVIOUS = """
import json
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
leaves = json.load(open({previous!r}))["leaves"]
executor = MigrationExecutor(connection)
ours = set(leaves)
targets = [(app, name) for app, name in leaves.items()]
targets += [node for node in executor.loader.graph.leaf_nodes() if node[0] not in ours]
executor.migrate(targets)
apps = executor.loader.project_state(targets).apps
User = apps.get_model("accounts", "User")
Node = apps.get_model("nodes", "Node")
Profile = apps.get_model("models_registry", "ModelProfile")
Server = apps.get_model("servers", "Server")
user = User.objects.create(username="old-admin", role="admin", is_superuser=True, is_staff=True)
node = Node.objects.create(name="spark1", queue="node.spark1")
profile = Profile.objects.create(name="coder", repo_id="Qwen/Qwen3-0.6B")
Server.objects.create(node=node, profile=profile, served_model_name="coder", port=8101, status="failed")
print("filled")
"""

CHECK = """
from servers.models import Server
server = Server.objects.get()
print(server.status, server.profile.name, server.cleared_at)
"""


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_a_database_of_the_previous_release_migrates_to_head_with_its_rows(scratch_database_url, tmp_path):
    leaves = json.loads(PREVIOUS.read_text())["leaves"]
    for app, name in leaves.items():
        assert (BASE_DIR / app / "migrations" / f"{name}.py").exists(), f"{app}.{name} is gone: squashed?"
    env = subprocess_env(DATABASE_URL=scratch_database_url, PORTAL_VAR_DIR=str(tmp_path / "var"))
    assert "filled" in _manage(env, "shell", "-c", AT_PREVIOUS.format(previous=str(PREVIOUS)))
    _manage(env, "migrate", "--noinput")
    _manage(env, "migrate", "--check")
    assert _manage(env, "shell", "-c", CHECK).splitlines()[-1].split() == ["failed", "coder", "None"]
