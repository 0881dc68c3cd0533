"""A person runs a job in the browser, watches it finish live, corrects a result, and edits the taxonomy;
runs a job on uploaded files while the page follows it live; calibrates the margin and sees its curve."""
import shutil
import time
import zipfile

import pytest

from accounts.models import AuditEvent
from classifier import scoring, services
from classifier.models import ClassificationJob, TaxonomyVersion
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


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.05)


@pytest.mark.browser
def test_a_person_runs_a_job_on_an_upload_live_and_calibrates_the_margin(portal, celery_worker, page, archive,
                                                                         fake_llm, member_user, jd_yaml, tmp_path,
                                                                         settings, monkeypatch):
    settings.PORTAL_CLASSIFIER_BATCH = 1  # progress can go out between any two files
    monkeypatch.setattr(scoring, "FIRST_BATCH", 1)  # from the first file on
    root, labels = archive
    services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
    docs = sorted((root / "docs").glob("*.md"))
    upload = tmp_path / "scans.zip"
    with zipfile.ZipFile(upload, "w") as archive_zip:
        for doc in docs:
            archive_zip.write(doc, f"scans/{doc.name}")
    login(page, portal, "mia")

    page.goto(f"{portal.url}/classifier/")
    page.check("#job-form input[name=source][value=upload]")
    page.set_input_files("#job-form input[name=files]", str(upload))
    page.fill("#job-form input[name=margin]", "1")  # every file goes to the LLM...
    page.fill("#job-form input[name=rerank_model]", fake_llm.model)
    fake_llm.hold()  # ...which answers only when the test lets it
    page.click("#job-form button[type=submit]")
    page.wait_for_url("**/classifier/jobs/*/")
    page.wait_for_function("window.Live.socket && Live.socket.readyState === WebSocket.OPEN")
    page.evaluate("window.seen = []; addEventListener('classifier-progress', (e) => seen.push(e.detail.files_done))")
    def files_shown(done: int) -> str:
        return f"document.querySelector('#job-files').textContent.replace(/\\s/g, '') === '{done}/{len(docs)}'"

    page.wait_for_function(files_shown(0))
    wait_for(lambda: fake_llm.chats() == 1)  # the first file waits for its answer
    time.sleep(1.1)  # progress goes out at most once a second: the first file's then goes out at once
    fake_llm.release(1)
    page.wait_for_function(files_shown(1))
    fake_llm.release()
    page.wait_for_function("document.querySelector('#job-status').textContent.trim() === 'done'", timeout=120000)
    seen = page.evaluate("window.seen")  # still the same page: it was fed by the websocket, not reloaded
    assert seen[0] == 1 and seen[-1] == len(docs) and seen == sorted(seen)
    assert page.locator("#job-files").inner_text().replace(" ", "") == f"{len(docs)}/{len(docs)}"
    assert page.locator("#job-rerank").inner_text() == "100%"
    assert float(page.locator("#job-rate").inner_text()) > 0
    # the page was served before any file was done; the stage timings came with the same events
    assert float(page.locator("#job-times span").nth(1).inner_text()) > 0
    page.locator("#results td.method", has_text="rerank").first.wait_for()
    assert page.locator("#results tbody tr[id^=result-]").count() == len(docs)
    shutil.rmtree(ClassificationJob.objects.get(owner=member_user).source_path)  # the upload, under VAR_DIR

    page.goto(f"{portal.url}/classifier/taxonomies/jd/")
    page.fill("#calibrate-form textarea[name=labeled_text]",
              "path,code\n" + "\n".join(f"{path},{code}" for path, code in labels.items()))
    page.fill("#calibrate-form input[name=target]", "90")
    page.click("#calibrate-form button[type=submit]")
    page.locator("#calibration-status[data-state=SUCCESS]").wait_for(timeout=120000)
    points = page.wait_for_function(
        "(() => { const chart = Chart.getChart(document.querySelector('#margin-list canvas.margin-curve'));"
        " return chart && chart.data.datasets[0].data.length; })()")
    stored = TaxonomyVersion.objects.get(taxonomy__name="jd").margins["multilingual-e5-small@2"]
    assert points.json_value() == len(stored["curve"]) > 1 and stored["target"] == 0.9

    card = page.locator("#margin-list [data-key='multilingual-e5-small@2']")
    card.locator("input[name=margin]").fill("0.05")
    card.locator("button[type=submit]").click()
    page.locator("#margin-list .margin-value", has_text="0.050").wait_for()
    assert "set by mia" in page.locator("#margin-list").inner_text()
    assert TaxonomyVersion.objects.get(taxonomy__name="jd").margins["multilingual-e5-small@2"]["margin"] == 0.05
