import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def test_check_deploy_with_production_settings_is_clean(tmp_path):
    env = os.environ.copy()
    env.update({"DEBUG": "0", "PORTAL_HTTPS": "1", "SECRET_KEY": "k" * 20 + "-production-secret-" + "q7" * 20,
                "ALLOWED_HOSTS": "portal.example.com", "PORTAL_VAR_DIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
