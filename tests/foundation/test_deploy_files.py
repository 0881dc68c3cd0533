"""deploy/: the production environment passes `check --deploy`, the units run what exists, and every metric
the Grafana dashboard charts is one the portal exports."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
DEPLOY = BASE_DIR / "deploy"


def _deploy_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "DATABASE_", "REDIS_", "SECRET_"))}
    for line in (DEPLOY / "portal.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value
    secret, token = tmp_path / "secret_key", tmp_path / "prometheus_token"
    secret.write_text("k" * 20 + "-production-secret-" + "q7" * 20)
    token.write_text("scrape-token-0123456789")
    env.update({"SECRET_KEY_FILE": str(secret), "PORTAL_PROMETHEUS_TOKEN_FILE": str(token),
                "PORTAL_VAR_DIR": str(tmp_path / "var"), "HF_HOME": str(tmp_path / "hf")})
    return env


def test_the_deploy_environment_passes_check_deploy(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=BASE_DIR, env=_deploy_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_units_run_the_portals_own_commands():
    units = {path.name: path.read_text() for path in (DEPLOY / "systemd").glob("*.service")}
    assert set(units) == {"sparkportal-web.service", "sparkportal-worker.service", "sparkportal-beat.service"}
    assert "sparkportal.asgi:application" in units["sparkportal-web.service"]
    assert "-Q ${PORTAL_WORKER_QUEUES}" in units["sparkportal-worker.service"]
    assert "KillMode=process" in units["sparkportal-worker.service"]  # engines outlive a worker restart
    for text in units.values():
        assert "EnvironmentFile=/etc/sparkportal/portal.env" in text
    assert "reverse_proxy 127.0.0.1:8000" in (DEPLOY / "Caddyfile").read_text()


@pytest.mark.django_db
def test_the_grafana_dashboard_charts_only_exported_metrics(member_user):
    from django.test import Client
    from django.utils import timezone

    from gateway.models import UsageRecord
    from nodes.models import Node
    from servers.models import Server

    node = Node.objects.create(name="spark1", queue="node.spark1", last_heartbeat_at=timezone.now(),
                               host_facts={"ram_total_gb": 128, "ram_used_gb": 10},
                               gpu_facts=[{"index": 0, "name": "H100", "memory_total_gb": 80, "memory_used_gb": 1,
                                           "temperature_c": 40, "power_w": 70, "utilization_pct": 5}])
    Server.objects.create(node=node, served_model_name="coder", port=8101, status="ready")
    UsageRecord.objects.create(user=member_user, username="mia", model="coder", endpoint="chat", status=429,
                               prompt_tokens=1, completion_tokens=1, created_at=timezone.now())
    exported = set(re.findall(r"^# TYPE (\S+) ", Client().get("/metrics").content.decode(), re.MULTILINE))
    dashboard = json.loads((DEPLOY / "grafana" / "sparkportal.json").read_text())
    charted = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            charted |= set(re.findall(r"\b((?:sparkportal|portal)_[a-z0-9_]+)", target["expr"]))
    exported |= {f"{name}_total" for name in exported}  # counters are exposed with _total
    series_only = {"sparkportal_server_generation_tokens_per_second", "sparkportal_server_prompt_tokens_per_second",
                   "sparkportal_server_requests_running", "sparkportal_server_requests_waiting",
                   "sparkportal_server_ttft_seconds", "sparkportal_server_e2e_seconds",
                   "sparkportal_server_kv_cache_usage_ratio", "sparkportal_server_prefix_cache_hit_ratio"}
    assert charted - exported - series_only == set()
    assert series_only <= exported  # declared even without a fresh sample
