"""Bad labeled rows (examples, calibration and evaluation CSVs) through the page, the API and the command:
a message naming the row or line, and nothing imported, not even the good rows before the bad one."""
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.models import LabeledExample

HTMX = {"HTTP_HX_REQUEST": "true"}
GOOD = '"Gas bill for March, 712 UAH",10.02.02\n'

# (CSV bytes, the message that names the row). Row numbers count data rows; line numbers count lines.
BAD = [
    pytest.param(f"text,code\n{GOOD}Spoon carving,99.99\n".encode(),
                 "Labeled row 2: expected code '99.99' is not in jd v1.", id="unknown-code"),
    pytest.param(f"text,code\n{GOOD} ,10.02\n".encode(),
                 "labeled CSV line 3: the path or text is empty.", id="empty-example"),
    pytest.param(f"text,code\n{GOOD}Рахунок за газ,\n".encode(),
                 "labeled CSV line 3: the expected code is empty.", id="empty-code"),
    pytest.param(f"text,code\n{GOOD}no code column here\n".encode(),
                 "labeled CSV line 3: expected two columns (path or text, expected code).", id="missing-column"),
]
# JSON bodies carry text, so the API meets a wrong encoding as a body that is not UTF-8 (tested below).
BAD_FILES = [*BAD, pytest.param(f"text,code\n{GOOD}Рахунок за газ,10.02.02\n".encode("cp1251"),
                                "line 3: not UTF-8 (byte 0xd0); save it as UTF-8.", id="wrong-encoding")]


@pytest.fixture
def web(client, member_user):
    client.force_login(member_user)
    return client


@pytest.mark.parametrize(("raw", "error"), BAD_FILES)
def test_the_command_names_the_row_and_imports_nothing(db, admin_user, archive, jd_version, tmp_path, raw, error):
    root, _ = archive
    labeled = tmp_path / "labeled.csv"
    labeled.write_bytes(raw)
    with pytest.raises(CommandError, match=re.escape(error)):
        call_command("classify", "jd", str(root / "docs"), "--examples", str(labeled), "--rerank-model", "")
    assert not LabeledExample.objects.exists()


@pytest.mark.parametrize(("raw", "error"), BAD)
@pytest.mark.parametrize("url", ["/api/classifier/taxonomies/jd/calibrate/", "/api/classifier/evaluate/"])
def test_the_api_names_the_row_and_imports_nothing(web, archive, jd_version, url, raw, error):
    body = {"labeled_csv": raw.decode(), "taxonomy": "jd",
            "settings": [{"embedder_key": "multilingual-e5-small", "depth": 2}]}
    response = web.post(url, json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and error.replace("labeled CSV ", "") in response.json()["detail"]
    assert not LabeledExample.objects.exists()


def test_the_api_refuses_a_body_that_is_not_utf8(web, archive, jd_version):
    body = json.dumps({"labeled_csv": "Рахунок за газ,10.02.02"}, ensure_ascii=False).encode("cp1251")
    response = web.post("/api/classifier/taxonomies/jd/calibrate/", body, content_type="application/json")
    assert 400 <= response.status_code < 500 and not LabeledExample.objects.exists()


@pytest.mark.parametrize(("raw", "error"), BAD_FILES)
@pytest.mark.parametrize("page", ["calibrate", "evaluate"])
def test_the_pages_name_the_row_and_import_nothing(web, archive, jd_version, page, raw, error):
    upload = SimpleUploadedFile("labeled.csv", raw)
    if page == "calibrate":
        form = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2", "target": "95"}
    else:
        side = {"version": "1", "embedder": "multilingual-e5-small", "depth": "2", "margin": "", "rerank_model": ""}
        form = {f"{prefix}-{k}": v for prefix in "ab" for k, v in side.items()}
    response = web.post(f"/classifier/taxonomies/jd/{page}/", {**form, "labeled_file": upload}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and f'id="{page}"' in body
    expected = error.replace("'", "&#x27;")
    if "UTF-8" in error:
        expected = "labeled.csv " + expected
    assert expected in body and "-status" not in body.split(f'id="{page}"', 1)[1]
    assert not LabeledExample.objects.exists()
