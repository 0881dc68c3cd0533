"""A person runs a job in the browser, watches it finish live, corrects a result, and edits the taxonomy."""
import pytest

from accounts.models import AuditEvent
from classifier import services
from tests.conftest import login, start_daphne, stop_process, subprocess_env


@pytest.fixture
def portal(transactional_db, archive):
    root, _ = archive
    server = start_daphne(subprocess_env(PORTAL_CLASSIFIER_ROOTS=str(root)))
    yield server
    stop_process(server.proc)


@pytest.mark.browser
def test_a_person_runs_a_job_and_corrects_a_result(portal, celery_worker, page, archive, fake_llm, member_user,
                                                   jd_yaml):
    root, _ = archive
    services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
    login(page, portal, "mia")

    page.goto(f"{portal.url}/classifier/")
    page.fill("#job-form input[name=path]", str(root / "docs"))
    page.fill("#job-form input[name=include]", "*.md")
    page.fill("#job-form input[name=rerank_model]", fake_llm.model)
    page.click("#job-form button[type=submit]")
    page.wait_for_url("**/classifier/jobs/*/")
    page.wait_for_function("document.querySelector('#job-status').textContent.trim() === 'done'", timeout=120000)
    rows = page.locator("#results tbody tr[id^=result-]")
    rows.first.wait_for()
    assert rows.count() == 5
    assert page.locator("#job-files").inner_text().replace(" ", "") == "5/5"

    row = page.locator("#results tr[data-path$='k8s_rollout_notes.md']")
    before = row.locator("td.code strong").inner_text()
    new_code = "45.04" if before != "45.04" else "45.05"
    row.locator("select[name=code]").select_option(new_code)
    row.locator("button[type=submit]").click()
    row = page.locator("#results tr[data-path$='k8s_rollout_notes.md']")
    row.locator("td.method", has_text="manual").wait_for()
    assert row.locator("td.code strong").inner_text() == new_code
    assert f"(was {before})" in row.locator("td.code").inner_text()
    assert AuditEvent.objects.filter(action="classifier.result.corrected", actor=member_user).count() == 1

    page.goto(f"{portal.url}/classifier/taxonomies/jd/")
    assert page.locator("#lint li[data-kind=duplicate_label]").count() == 3
    node = page.locator("li[data-code='20.03.01']").first
    node.locator("button", has_text="edit").first.click()
    node.locator("input[name=description]").first.fill("cleaning supplies and services")
    node.locator("button[type=submit]").first.click()
    page.wait_for_url("**/classifier/taxonomies/jd/?version=2")
    assert "cleaning supplies and services" in page.locator("li[data-code='20.03.01']").first.inner_text()
    assert page.locator("#lint li[data-kind=missing_description]").count() == 0
