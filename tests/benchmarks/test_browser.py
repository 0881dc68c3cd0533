"""A person runs a plan from the Benchmarks page and watches its progress and result table."""
import pytest

from benchmarks import services
from tests.benchmarks.conftest import marked_processes, wait_for
from tests.conftest import login

pytestmark = [pytest.mark.browser]


def test_run_a_plan_and_watch_progress_and_results(celery_worker, asgi_server, bench_node, bench_profile,
                                                   operator_user, page):
    slow = {"FAKE_VLLM_STARTUP_DELAY_S": "0.5", "FAKE_VLLM_TOKEN_DELAY_S": "0.02"}
    # The first server starts slowly enough that its "starting server" progress (re-sent about once a second
    # while waiting for ready) reaches the page after it has subscribed, however long the page takes to load.
    first = {**slow, "FAKE_VLLM_STARTUP_DELAY_S": "3"}
    profiles = [bench_profile("glm47-flash", extra_env=first), bench_profile("gemma4-31b-it", extra_env=slow)]
    workload = services.workload_save(actor=operator_user, name="tiny", input_len=8, output_len=16, num_prompts=4)
    services.plan_save(actor=operator_user, name="weekly", workload=workload, profiles=profiles, warmups=1,
                       repeats=2)
    page.add_init_script("window.__progress = []; window.addEventListener('benchmark-progress', "
                         "(e) => window.__progress.push(e.detail));")
    login(page, asgi_server, "oscar")
    page.goto(f"{asgi_server.url}/benchmarks/")
    assert page.locator('tr[data-plan="weekly"]').inner_text().startswith("weekly\tglm47-flash, gemma4-31b-it\ttiny")
    page.click('[data-testid="run-weekly"]')
    page.wait_for_url("**/benchmarks/runs/*/")

    progress = page.locator('[data-testid="run-progress"]')
    progress.filter(has_text="profile gemma4-31b-it (2 of 2)").wait_for(timeout=60000)
    page.locator('[data-testid="run-status"]', has_text="succeeded").wait_for(timeout=90000)

    seen = page.evaluate("window.__progress")
    steps = {(e["profile"], e["phase"], e["repeat"]) for e in seen}
    assert ("glm47-flash", "starting server", 0) in steps and ("gemma4-31b-it", "benchmarking", 2) in steps
    assert any(e["eta_s"] is not None for e in seen)
    table = page.locator("#result-table")
    table.locator('tr[data-profile="gemma4-31b-it"] [data-metric="output_throughput"]').filter(
        has_text=".").wait_for()
    for name in ("glm47-flash", "gemma4-31b-it"):
        row = table.locator(f'tr[data-profile="{name}"]')
        assert row.locator("td").nth(1).inner_text().startswith("done")
        assert float(row.locator('[data-metric="output_throughput"]').inner_text()) > 0
        assert float(row.locator('[data-metric="median_ttft_ms"]').inner_text()) > 0
        assert "2 ok" in row.inner_text()
    wait_for(lambda: marked_processes() == [], timeout=10, what="no engine process left")
