"""The classifier's forms: a job from a folder or an upload, margin calibration and override, evaluation side by
side; each with the errors a person sees for bad input."""
import io
import time
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import AuditEvent
from classifier import services
from classifier.models import ClassificationJob, TaxonomyVersion

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def web(client, member_user):
    client.force_login(member_user)
    return client


@pytest.fixture
def uploads(settings, tmp_path) -> Path:
    """Uploads land under this test's own VAR_DIR; returns the member's uploads folder."""
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var" / "classifier" / "uploads" / "mia"


def zipped(name: str, members: dict[str, str]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def job_form(**fields) -> dict:
    return {"taxonomy": "jd", "source": "folder", "depth": "2", "embedder": "multilingual-e5-small",
            "rerank_model": "", **fields}


def test_a_job_starts_on_a_folder_or_on_uploaded_files_or_a_zip(web, archive, jd_version, uploads):
    root, _ = archive
    response = web.post("/classifier/jobs/new/", job_form(path=str(root / "docs"), include="*.md"))
    job = ClassificationJob.objects.get()
    assert response.status_code == 302 and response.url == f"/classifier/jobs/{job.pk}/"
    assert job.source_path == str(root / "docs") and job.include == ["*.md"]

    files = [SimpleUploadedFile("receipt.txt", b"Supermarket receipt: milk, bread."),
             SimpleUploadedFile("receipt.txt", b"Restaurant bill: soup, tea."), SimpleUploadedFile("scan.jpg", b"\xff")]
    response = web.post("/classifier/jobs/new/", job_form(source="upload", files=files, margin="0.02"), **HTMX)
    job = ClassificationJob.objects.latest("pk")
    assert response.status_code == 200 and response["HX-Redirect"] == f"/classifier/jobs/{job.pk}/"
    folder = Path(job.source_path)
    assert folder.parent == uploads and job.margin == 0.02
    assert sorted(p.name for p in folder.iterdir()) == ["receipt (2).txt", "receipt.txt", "scan.jpg"]

    archive_file = zipped("scans.zip", {"2024/receipts/grocery.txt": "milk", "notes.md": "# notes"})
    web.post("/classifier/jobs/new/", job_form(source="upload", files=[archive_file]), **HTMX)
    folder = Path(ClassificationJob.objects.latest("pk").source_path)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == ["2024/receipts/grocery.txt", "notes.md"]
    assert AuditEvent.objects.filter(action="classifier.upload.stored").count() == 2


@pytest.mark.parametrize(("fields", "error"), [
    ({"source": "upload"}, "Choose at least one file or a .zip to upload."),
    ({"source": "upload", "files": [SimpleUploadedFile("empty.txt", b"")]},
     "The upload is empty (0 bytes): choose the files to classify."),
    ({"source": "upload", "files": [zipped("evil.zip", {"ok.txt": "fine", "../../etc/cron.d/x": "boom"})]},
     "evil.zip: &#x27;../../etc/cron.d/x&#x27; points outside the archive (an absolute path or &#x27;..&#x27;). "
     "Zip the folder from inside it and upload again."),
    ({"source": "upload", "files": [zipped("abs.zip", {"/etc/passwd": "root"})]}, "abs.zip: &#x27;/etc/passwd&#x27;"),
    ({"source": "upload", "files": [zipped("big.zip", {"a.txt": "x" * 600})]},
     "The upload unpacks to more than 512 bytes: upload fewer files, or put them in a folder under an archive root"),
    ({"source": "upload", "files": [SimpleUploadedFile("a.txt", b"x" * 300), SimpleUploadedFile("b.txt", b"y" * 300)]},
     "The upload unpacks to more than 512 bytes"),
    ({"source": "upload", "files": [zipped("none.zip", {})]}, "none.zip holds no files."),
    ({"source": "upload", "files": [SimpleUploadedFile("broken.zip", b"PK not really")]},
     "broken.zip is not a readable zip file."),
    ({"source": "folder", "path": ""}, "Give the full path of a folder under the archive roots."),
    ({"source": "folder", "path": "/etc"}, "/etc is outside the archive roots"),
    ({"source": "upload", "files": [SimpleUploadedFile("a.txt", b"x")], "margin": "wide"}, "Enter a number."),
    ({"source": "upload", "files": [SimpleUploadedFile("a.txt", b"x")], "depth": "9"},
     "Ensure this value is less than or equal to 3."),
])
def test_the_job_form_says_what_to_fix_and_keeps_nothing_of_a_refused_upload(web, settings, archive, jd_version,
                                                                             uploads, fields, error):
    settings.PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES = 512
    response = web.post("/classifier/jobs/new/", job_form(**fields), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'id="job-form-card"' in body and "<html" not in body
    assert error in body
    assert not ClassificationJob.objects.exists()
    assert not uploads.exists() or not any(uploads.iterdir())


def test_without_htmx_a_refused_job_renders_the_whole_page_with_the_error(web, archive, jd_version, uploads):
    response = web.post("/classifier/jobs/new/", job_form(source="upload"))
    body = response.content.decode()
    assert response.status_code == 200 and "<html" in body and "Choose at least one file or a .zip" in body


@pytest.mark.parametrize(("fields", "error"), [
    ({}, "Upload a labeled CSV or paste its rows: path or text, expected code."),
    ({"labeled_text": "only one column"}, "labeled CSV line 1: expected two columns (path or text, expected code)."),
    ({"labeled_text": "path,code\nsome receipt,99.99"},
     "Labeled row 1: expected code &#x27;99.99&#x27; is not in jd v1."),
    ({"labeled_text": f"{__file__},10.02"}, f"Labeled row 1: {__file__} is outside the archive roots."),
    ({"labeled_file": SimpleUploadedFile("labels.csv", "receipt,10.02".encode("utf-16"))},
     "labels.csv line 1: not UTF-8 (byte 0xff); save it as UTF-8."),
    ({"labeled_text": "receipt,10.02", "target": "120"}, "Ensure this value is less than or equal to 100."),
    ({"labeled_text": "receipt,10.02", "depth": "0"}, "Ensure this value is greater than or equal to 1."),
    ({"labeled_text": "receipt,10.02", "embedder": "nope"}, "Select a valid choice."),
])
def test_the_calibration_form_says_what_to_fix(web, archive, jd_version, fields, error):
    form = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2", "target": "95", **fields}
    response = web.post("/classifier/taxonomies/jd/calibrate/", form, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'id="calibrate"' in body
    assert error in body and "calibration-status" not in body


def poll(client, url: str, timeout: float = 240) -> str:
    """GET the status fragment until the task has finished; returns the last fragment."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url, **HTMX).content.decode()
        if 'data-state="SUCCESS"' in body or 'data-state="FAILURE"' in body:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def status_url(body: str) -> str:
    return body.split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")


@pytest.mark.django_db(transaction=True)
def test_a_calibration_runs_on_a_worker_and_its_margin_can_be_overridden(celery_worker, web, archive, member_user,
                                                                        stranger, jd_yaml):
    root, labels = archive
    services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
    rows = "path,code\n" + "\n".join(f"{p},{c}" for p, c in labels.items())
    labeled = SimpleUploadedFile("labels.csv", rows.encode())
    response = web.post("/classifier/taxonomies/jd/calibrate/", {
        "version": "1", "labeled_file": labeled, "embedder": "multilingual-e5-small", "depth": "2", "target": "90"},
        **HTMX)
    body = response.content.decode()
    assert 'id="calibration-status"' in body and 'hx-trigger="load delay:1s"' in body
    url = status_url(body)
    done = poll(web, url)
    stored = TaxonomyVersion.objects.get().margins["multilingual-e5-small@2"]
    assert stored["target"] == 0.9 and stored["samples"] == len(labels) and stored["precision"] >= 0.9
    assert f"margin {stored['margin']:.3f} stored" in done
    assert 'id="margin-list" hx-swap-oob="true"' in done and 'class="margin-curve"' in done
    assert '"rerank_share"' in done  # the curve's points, for the chart

    other = Client()
    other.force_login(stranger)
    assert other.get(url, **HTMX).status_code == 404  # someone else's task
    assert other.get(f"/api/classifier/tasks/{url.split('/')[-2]}/").status_code == 404

    override = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2"}
    body = web.post("/classifier/taxonomies/jd/margin/", {**override, "margin": "0.05"}, **HTMX).content.decode()
    assert "<strong class=\"margin-value\">0.050</strong>" in body and "set by mia" in body
    after = TaxonomyVersion.objects.get().margins["multilingual-e5-small@2"]
    assert after["margin"] == 0.05 and after["calibrated_margin"] == stored["margin"]
    assert after["curve"] == stored["curve"] and 0 <= after["rerank_share"] <= 1
    assert services.job_create(owner=member_user, version=TaxonomyVersion.objects.get(), source_path=str(root),
                               enqueue=False).margin == 0.05
    assert AuditEvent.objects.filter(action="classifier.margin.overridden").count() == 1

    body = web.post("/classifier/taxonomies/jd/margin/", {**override, "margin": "wide"}, **HTMX).content.decode()
    assert "The margin is a decimal number between 0 and 1, e.g. 0.02." in body
    body = web.post("/classifier/taxonomies/jd/margin/", {**override, "depth": "3", "margin": "0.1"},
                    **HTMX).content.decode()
    assert "jd v1 has no calibrated margin for multilingual-e5-small at depth 3: calibrate first." in body


@pytest.mark.parametrize(("fields", "error"), [
    ({}, "Upload a labeled CSV or paste its rows"),
    ({"labeled_text": "receipt,10.02", "b-margin": "3"}, "Ensure this value is less than or equal to 1."),
    ({"labeled_text": "receipt,10.02", "b-version": "7"}, "Select a valid choice. 7 is not one of the available"),
    ({"labeled_text": "receipt,10.02", "a-depth": ""}, "This field is required."),
    ({"labeled_text": "receipt,99.99"}, "Labeled row 1: expected code &#x27;99.99&#x27; is not in jd v1."),
])
def test_the_evaluation_form_says_what_to_fix(web, archive, jd_version, fields, error):
    side = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2", "margin": "", "rerank_model": ""}
    form = {f"{prefix}-{k}": v for prefix in "ab" for k, v in side.items()}
    response = web.post("/classifier/taxonomies/jd/evaluate/", {**form, **fields}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'id="evaluate"' in body
    assert error in body and "evaluation-status" not in body


@pytest.mark.django_db(transaction=True)
def test_an_evaluation_compares_two_settings_side_by_side(celery_worker, web, archive, fake_llm, member_user, jd_yaml):
    _, labels = archive
    v1 = services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
    services.taxonomy_node_update(actor=member_user, node=v1.nodes.get(code="10.02"), description="receipts, bills")
    page = web.get("/classifier/taxonomies/jd/evaluate/").content.decode()
    assert 'name="a-version"' in page and "v2 (edited 10.02)" in page
    response = web.post("/classifier/taxonomies/jd/evaluate/", {
        "labeled_text": "path,code\n" + "\n".join(f"{p},{c}" for p, c in labels.items()),
        "a-version": "1", "a-embedder": "multilingual-e5-small", "a-depth": "2", "a-margin": "", "a-rerank_model": "",
        "b-version": "2", "b-embedder": "multilingual-e5-small", "b-depth": "2", "b-margin": "0.5",
        "b-rerank_model": fake_llm.model}, **HTMX)
    done = poll(web, status_url(response.content.decode()))
    table = done.split('id="comparison"', 1)[1]
    rows = {row.split("<th>", 1)[1].split("</th>", 1)[0]: row for row in table.split("<tr")[1:] if "<th>" in row}
    assert rows["Label text"].count("<td>") == 2 and "<td>v1</td><td>v2</td>" in rows["Label text"]
    assert "<td>0.030</td><td>0.500</td>" in rows["Margin"]  # the default margin, then the one given
    assert "<td>0.000</td><td>1.000</td>" in rows["Rerank share"]  # every file's lead is below 0.5
    assert rows["Accuracy after rerank"].count("<td>") == 2 and rows["Top-5 recall"].count("<td>") == 2
    assert "Finance / Expenses" in rows["Most confused (expected → got)"]  # codes come with their labels
    assert any(r["path"] == "/v1/chat/completions" for r in fake_llm.requests)
