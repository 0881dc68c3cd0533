"""Only a taxonomy's owner and admins change it (labels, versions, examples, margins, calibration), through
the API and the pages alike; every member still reads it and runs jobs with it."""
import json

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.services import api_key_create
from classifier import services
from classifier.models import ClassificationResult, LabeledExample, TaxonomyVersion

CALIBRATED = {"multilingual-e5-small@2": {"margin": 0.02, "precision": 0.9, "rerank_share": 0.3, "target": 0.95,
                                          "samples": 10, "curve": []}}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def calibrated(jd_version):
    TaxonomyVersion.objects.filter(pk=jd_version.pk).update(margins=CALIBRATED)
    return jd_version


@pytest.fixture
def as_stranger(client, stranger):
    _key, raw = api_key_create(owner=stranger, name="laptop")
    return {"HTTP_X_API_KEY": raw}


def _json(client, method, url, body, **extra):
    return getattr(client, method)(url, json.dumps(body), content_type="application/json", **extra)


def _unchanged(version) -> bool:
    return (TaxonomyVersion.objects.filter(taxonomy=version.taxonomy).count() == 1
            and TaxonomyVersion.objects.get(pk=version.pk).margins == CALIBRATED)


def test_the_api_refuses_changes_to_someone_elses_taxonomy(client, calibrated, as_stranger):
    node = calibrated.nodes.get(code="20.03.01")
    response = _json(client, "patch", f"/api/classifier/nodes/{node.pk}/", {"name": "pwned"}, **as_stranger)
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "detail": (
        "Taxonomy 'jd' belongs to mia: only mia or an admin may change its labels, examples or margins. "
        "Import a copy under another name to change your own.")}
    margin = {"embedder": "multilingual-e5-small", "depth": 2, "margin": 1.0}
    assert _json(client, "post", "/api/classifier/taxonomies/jd/margin/", margin, **as_stranger).status_code == 403
    calibrate = {"labeled_csv": "receipt milk bread,10.06.03\n", "depth": 2}
    assert _json(client, "post", "/api/classifier/taxonomies/jd/calibrate/", calibrate,
                 **as_stranger).status_code == 403
    reimport = {"name": "jd", "yaml": "10 Finance: money\n"}
    assert _json(client, "post", "/api/classifier/taxonomies/", reimport, **as_stranger).status_code == 403
    assert _unchanged(calibrated)
    # reading stays open to every member
    assert client.get("/api/classifier/taxonomies/jd/nodes/", **as_stranger).status_code == 200
    assert _json(client, "patch", "/api/classifier/nodes/999999/", {"name": "x"}, **as_stranger).status_code == 404


def test_the_owner_and_admins_may_change_it(client, calibrated, member_user, admin_user):
    node = calibrated.nodes.get(code="20.03.01")
    client.force_login(admin_user)
    response = _json(client, "patch", f"/api/classifier/nodes/{node.pk}/", {"description": "by the admin"})
    assert response.status_code == 200 and response.json()["description"] == "by the admin"
    client.force_login(member_user)
    margin = {"embedder": "multilingual-e5-small", "depth": 2, "margin": 0.05}
    response = _json(client, "post", "/api/classifier/taxonomies/jd/margin/?version=1", margin)
    assert response.status_code == 200 and response.json()["margins"]["multilingual-e5-small@2"]["margin"] == 0.05


def test_the_pages_refuse_changes_and_hide_their_forms(calibrated, stranger, member_user):
    web = Client()
    web.force_login(stranger)
    page = web.get("/classifier/taxonomies/jd/").content.decode()
    assert 'id="read-only"' in page and "Owned by mia" in page
    assert "margin-override" not in page and 'id="calibrate-form"' not in page and "editing = true" not in page
    node = calibrated.nodes.get(code="20.03.01")
    response = web.post(f"/classifier/nodes/{node.pk}/edit/", {"name": "pwned", "description": ""})
    assert response.status_code == 403 and "belongs to mia" in response.content.decode()
    override = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2", "margin": "1"}
    assert web.post("/classifier/taxonomies/jd/margin/", override, **HTMX).status_code == 403
    calibrate = {"version": "1", "labeled_text": "receipt milk bread,10.06.03", "embedder": "multilingual-e5-small",
                 "depth": "2", "target": "90"}
    assert web.post("/classifier/taxonomies/jd/calibrate/", calibrate, **HTMX).status_code == 403
    assert web.post("/classifier/taxonomies/import/", {"name": "jd", "yaml": "10 Finance: money\n"}).status_code == 403
    assert _unchanged(calibrated)

    owner = Client()
    owner.force_login(member_user)
    page = owner.get("/classifier/taxonomies/jd/").content.decode()
    assert 'id="read-only"' not in page and "margin-override" in page and "editing = true" in page


def test_someone_elses_job_on_the_taxonomy_corrects_results_without_teaching_it(archive, calibrated, stranger):
    root, _ = archive
    job = services.job_create(owner=stranger, version=calibrated, source_path=str(root / "docs"), enqueue=False)
    result = ClassificationResult.objects.create(job=job, path=str(root / "docs" / "k8s_rollout_notes.md"), code="10",
                                                 label_path="Finance", method="embedding")
    result = services.result_correct(actor=stranger, result=result, code="30.01")
    assert result.code == "30.01" and result.method == "manual"
    assert not LabeledExample.objects.exists()
    with pytest.raises(PermissionDenied, match="belongs to mia"):
        services.examples_import(actor=stranger, taxonomy=calibrated.taxonomy, rows=[("milk bread", "10.06.03")])
