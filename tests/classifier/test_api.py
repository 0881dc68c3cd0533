"""REST API of the classifier, with session and API-key auth, privacy of jobs, corrections and exports."""
import csv
import io
import json
import time
from pathlib import Path

import pytest

from accounts.models import AuditEvent
from accounts.services import api_key_create
from classifier import pipeline, services
from classifier.models import ClassificationResult
from sparkportal.exceptions import ValidationFailed

COMPACT = "10 Finance:\n  description: money\n  10.06 Expenses:\n    10.06.03 Food: grocery receipts\n"


@pytest.fixture
def api(client, member_user):
    client.force_login(member_user)
    return client


def post(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def test_import_both_shapes_and_read_the_tree(api):
    response = post(api, "/api/classifier/taxonomies/", {"name": "home", "yaml": COMPACT})
    assert response.status_code == 201 and response.json()["nodes"] == 3
    explicit = "- code: '10'\n  name: Finance\n  children:\n    - {code: '10.06', name: Expenses}\n"
    response = post(api, "/api/classifier/taxonomies/", {"name": "home", "yaml": explicit})
    assert response.json()["number"] == 2
    nodes = api.get("/api/classifier/taxonomies/home/nodes/?version=1").json()
    assert [(n["code"], n["parent_code"], n["label_path"]) for n in nodes] == [
        ("10", None, "Finance"), ("10.06", "10", "Finance / Expenses"),
        ("10.06.03", "10.06", "Finance / Expenses / Food")]


def test_bad_yaml_gets_a_400_naming_the_line(api):
    response = post(api, "/api/classifier/taxonomies/", {"name": "bad", "yaml": "10 A: x\n10 B: y\n"})
    assert response.status_code == 400
    assert response.json() == {"detail": "line 2: duplicate code 10 (first on line 1).", "code": "invalid_taxonomy"}
    response = post(api, "/api/classifier/taxonomies/", {"name": "Bad Name!", "yaml": COMPACT})
    assert "must be lowercase letters" in response.json()["detail"]


def test_a_task_id_is_a_uuid_and_an_unknown_one_is_not_found(api):
    # Any text used to reach the cache as part of a key (some backends refuse control characters in keys).
    response = api.get("/api/classifier/tasks/not-a-task%01/")
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    response = api.get("/api/classifier/tasks/0b6f1d1e-9a57-4a57-9d0a-6f0e5b0b7c11/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_lint_and_node_edit(api, jd_version):
    findings = api.get("/api/classifier/taxonomies/jd/lint/").json()
    assert {"duplicate_label", "empty_subtree", "missing_description"} <= {f["kind"] for f in findings}
    node = jd_version.nodes.get(code="20.03.01")
    response = api.patch(f"/api/classifier/nodes/{node.pk}/", json.dumps({"description": "cleaning supplies"}),
                         content_type="application/json")
    assert response.status_code == 200 and response.json()["description"] == "cleaning supplies"
    findings = api.get("/api/classifier/taxonomies/jd/lint/").json()
    assert "missing_description" not in {f["kind"] for f in findings}


def test_jobs_are_confined_to_the_roots_and_private(client, api, archive, jd_version, member_user, stranger):
    root, _ = archive
    response = post(api, "/api/classifier/jobs/", {"taxonomy": "jd", "path": "/etc"})
    assert response.status_code == 403 and "outside the archive roots" in response.json()["detail"]
    response = post(api, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(root / "docs"), "depth": 4})
    assert response.json()["detail"] == "Depth 4 is not in this taxonomy: choose 1 to 3 (start at 2)."
    response = post(api, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(root / "docs"), "embedder": "x"})
    assert response.json()["code"] == "unknown_embedder"
    job = post(api, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(root / "docs")}).json()
    assert job["status"] == "queued" and job["embedder"] == "multilingual-e5-small" and job["depth"] == 2

    _key, raw = api_key_create(owner=stranger, name="laptop")
    as_stranger = {"HTTP_X_API_KEY": raw}
    client.logout()
    assert client.get(f"/api/classifier/jobs/{job['id']}/", **as_stranger).status_code == 404
    assert client.get("/api/classifier/jobs/", **as_stranger).json()["count"] == 0
    shared = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"), shared=True)
    assert client.get(f"/api/classifier/jobs/{shared.pk}/", **as_stranger).status_code == 200
    response = client.post(f"/api/classifier/jobs/{shared.pk}/cancel/", **as_stranger)
    assert response.status_code == 403 and "shared for reading" in response.json()["detail"]
    assert client.post(f"/api/classifier/jobs/{job['id']}/cancel/", **as_stranger).status_code == 404


def test_results_filters_correction_and_export(api, archive, jd_version, member_user, settings):
    root, _ = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              include=["*.txt"], rerank_model="", enqueue=False)
    pipeline.job_run(job_id=job.pk)
    results = api.get(f"/api/classifier/jobs/{job.pk}/results/").json()
    assert results["count"] == 7 and {r["method"] for r in results["items"]} == {"embedding"}
    woodwork = api.get(f"/api/classifier/jobs/{job.pk}/results/?code=55").json()["items"]
    assert [r["path"].rsplit("/", 1)[1] for r in woodwork] == ["basswood_spoon_project.txt"]

    target = results["items"][0]
    response = post(api, f"/api/classifier/results/{target['id']}/correct/", {"code": "99.99"})
    assert response.status_code == 400 and "'99.99' is not a code of jd v1" in response.json()["detail"]
    response = post(api, f"/api/classifier/results/{target['id']}/correct/", {"code": "55.03.01"})
    corrected = response.json()
    assert (corrected["method"], corrected["code"], corrected["original_code"]) == ("manual", "55.03.01",
                                                                                   target["code"])
    assert corrected["corrected_by"] == "mia"
    event = AuditEvent.objects.get(action="classifier.result.corrected")
    assert event.details["from"] == target["code"] and event.details["to"] == "55.03.01"

    body = api.get(f"/classifier/jobs/{job.pk}/export.csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == ["path", "code", "label_path", "score", "method", "confidence", "reason"]
    assert len(rows) == 7 and any(r["method"] == "manual" for r in rows)
    exported = api.get(f"/classifier/jobs/{job.pk}/export.json").json()
    assert exported[0]["path"] == rows[0]["path"]
    plan = api.get(f"/classifier/jobs/{job.pk}/plan/?target=/sorted").content.decode()
    assert "/sorted/50-59/55 Woodcarving/55.03 Wood/55.03.01 Basswood/" in plan


@pytest.mark.django_db(transaction=True)
def test_calibration_and_side_by_side_evaluation_run_on_a_worker(celery_worker, client, member_user, archive,
                                                                 jd_yaml):
    client.force_login(member_user)
    root, labels = archive
    post(client, "/api/classifier/taxonomies/", {"name": "jd", "yaml": jd_yaml})
    labeled = "path,code\n" + "\n".join(f"{p},{c}" for p, c in labels.items())
    task = post(client, "/api/classifier/taxonomies/jd/calibrate/", {"labeled_csv": labeled, "target": 0.9}).json()
    result = _wait_task(client, task["task_id"])
    assert result["samples"] == len(labels) and result["precision"] >= 0.9
    assert result["curve"][0]["margin"] == 0.0 and result["curve"][0]["rerank_share"] == 0.0
    version = client.get("/api/classifier/taxonomies/").json()[0]
    assert version["margins"]["multilingual-e5-small@2"]["margin"] == result["margin"]
    job = post(client, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(root / "docs")}).json()
    assert job["margin"] == result["margin"]  # the calibrated margin is the job's default
    override = post(client, "/api/classifier/taxonomies/jd/margin/",
                    {"embedder": "multilingual-e5-small", "depth": 2, "margin": 0.2}).json()
    assert override["margins"]["multilingual-e5-small@2"]["margin"] == 0.2
    assert post(client, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(root / "docs")}).json()["margin"] == 0.2

    task = post(client, "/api/classifier/evaluate/", {"taxonomy": "jd", "labeled_csv": labeled, "settings": [
        {"embedder_key": "multilingual-e5-small", "depth": 2}, {"embedder_key": "all-minilm-l6-v2", "depth": 2}]})
    reports = _wait_task(client, task.json()["task_id"])
    e5, minilm = reports
    assert e5["accuracy_embedding"] > minilm["accuracy_embedding"]  # the archive is EN/UK/RU
    assert e5["top5_recall"] >= 0.9 and e5["confused"]
    response = post(client, "/api/classifier/evaluate/", {"taxonomy": "jd", "labeled_csv": "only-one-column",
                                                          "settings": []})
    assert response.json()["detail"].startswith("labeled CSV line 1: expected two columns")


def _wait_task(client, task_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/api/classifier/tasks/{task_id}/").json()
        if state["state"] == "SUCCESS":
            return state["result"]
        assert state["state"] in ("PENDING", "STARTED"), state
        time.sleep(0.3)
    raise AssertionError("task did not finish")


def test_classify_command_writes_one_csv_row_per_file(db, admin_user, archive, tmp_path):
    from django.core.management import call_command

    root, labels = archive
    out = tmp_path / "results.csv"
    call_command("classify", "tests/classifier/data/jd.yaml", str(root / "docs"), "--depth", "2", "--out", str(out),
                 "--rerank-model", "")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(labels)
    assert {r["method"] for r in rows} == {ClassificationResult.Method.EMBEDDING}
    assert all(r["code"].count(".") == 1 for r in rows if r["code"] != "47")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No taxonomy named 'nope'"):
        call_command("classify", "nope", str(root))


def test_apply_plan_copies_into_a_johnny_decimal_tree_and_never_touches_sources(api, archive, jd_version,
                                                                                member_user):
    root, _ = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"),
                              include=["*.md"], rerank_model="", enqueue=False)
    pipeline.job_run(job_id=job.pk)
    target = root / "sorted"
    plan = api.get(f"/api/classifier/jobs/{job.pk}/plan/?target={target}").json()
    assert len(plan) == 5 and not target.exists()  # a dry run writes nothing
    response = post(api, f"/api/classifier/jobs/{job.pk}/apply/", {"target": "/tmp/elsewhere"})
    assert response.status_code == 403 and "outside the archive roots" in response.json()["detail"]
    before = {p: p.stat().st_mtime for p in (root / "docs").iterdir()}
    assert post(api, f"/api/classifier/jobs/{job.pk}/apply/", {"target": str(target)}).json()["placed"] == 5
    for step in plan:
        assert Path(step["destination"]).read_bytes() == Path(step["source"]).read_bytes()
    assert {p: p.stat().st_mtime for p in (root / "docs").iterdir()} == before
    again = post(api, f"/api/classifier/jobs/{job.pk}/apply/", {"target": str(target)}).json()
    assert again["placed"] == 0 and len(again["skipped"]) == 5
    assert AuditEvent.objects.filter(action="classifier.job.applied").count() == 2
    import shutil

    shutil.rmtree(target)


def test_a_zip_upload_becomes_a_job_folder_and_one_naming_paths_outside_it_is_refused(api, settings, tmp_path,
                                                                                     jd_version):
    import zipfile

    settings.VAR_DIR = tmp_path
    settings.PORTAL_CLASSIFIER_ROOTS = []

    def zipped(name: str, members: dict) -> io.BytesIO:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for member, text in members.items():
                archive.writestr(member, text)
        buffer.seek(0)
        buffer.name = name
        return buffer

    response = api.post("/api/classifier/uploads/", {"files": [zipped("scans.zip", {
        "receipts/grocery.txt": "Supermarket receipt: milk, bread. Total 5 EUR.", "notes.md": "# Notes"})]})
    assert response.status_code == 201
    folder = Path(response.json()["path"])
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == ["notes.md", "receipts/grocery.txt"]
    job = post(api, "/api/classifier/jobs/", {"taxonomy": "jd", "path": str(folder), "rerank_model": ""})
    assert job.status_code == 201, job.json()

    uploads = tmp_path / "classifier" / "uploads" / "mia"
    before = set(uploads.iterdir())
    response = api.post("/api/classifier/uploads/", {"files": [zipped("evil.zip", {
        "ok.txt": "fine", "../../evil.txt": "would land outside the upload folder"})]})
    assert response.status_code == 400
    assert response.json() == {"code": "zip_path_escapes", "detail": (
        "evil.zip: '../../evil.txt' points outside the archive (an absolute path or '..'). "
        "Zip the folder from inside it and upload again.")}
    assert set(uploads.iterdir()) == before and not (tmp_path / "evil.txt").exists()  # nothing left behind
    bad = io.BytesIO(b"not a zip")
    bad.name = "broken.zip"
    assert api.post("/api/classifier/uploads/", {"files": [bad]}).json()["detail"] == (
        "broken.zip is not a readable zip file.")


def test_classify_command_reads_a_path_given_to_it_without_configured_roots(db, admin_user, corpus_dir, settings,
                                                                          tmp_path):
    from django.core.management import call_command

    from classifier.archive import scan

    root, labels = corpus_dir
    settings.PORTAL_CLASSIFIER_ROOTS = []
    out = tmp_path / "results.csv"
    call_command("classify", "tests/classifier/data/jd.yaml", str(root / "docs"), "--out", str(out),
                 "--rerank-model", "")
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == len(labels)
    assert scan.roots() == [scan.uploads_root()]  # the command's root ends with it: the web never sees it
    with pytest.raises(ValidationFailed, match="No archive roots are configured"):
        scan.check_source(str(root / "docs"))
