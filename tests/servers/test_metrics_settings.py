"""The scrape period has a floor: a clear message instead of a worker that scrapes in a tight loop."""
import subprocess
import sys

from tests.conftest import BASE_DIR, subprocess_env


def test_a_scrape_period_under_one_second_is_refused_with_the_fix():
    env = subprocess_env(PORTAL_METRICS_SCRAPE_SECONDS="0.5")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert ("PORTAL_METRICS_SCRAPE_SECONDS=0.5 is too short: scrape every 1 second or more."
            in result.stderr)
