"""Bad taxonomy files and labeled CSVs get a 4xx naming the line, fast: aliases (a billion laughs, a loop),
deep nesting, files over the size limit, text that is not UTF-8; from the API, the page and the command."""
import io
import json
import string

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from classifier.models import Taxonomy
from classifier.taxonomy import yaml_import


def billion_laughs(levels: int = 10) -> str:
    names = string.ascii_lowercase[:levels]
    lines = [f'{names[0]}: &{names[0]} ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def api(client, member_user):
    client.force_login(member_user)
    return client


def _import(client, text: str):
    return client.post("/api/classifier/taxonomies/", json.dumps({"name": "bomb", "yaml": text}),
                       content_type="application/json")


@pytest.mark.parametrize(("text", "expected"), [
    (billion_laughs(), "line 2: the alias *a is not allowed in a taxonomy"),
    ("a: &a [*a]\n", "line 1: the alias *a is not allowed in a taxonomy"),
    ("10 Finance:\n  description: &d money\n  10.06 Expenses: *d\n", "line 3: the alias *d is not allowed"),
    ("x: " + "[" * 100 + "]" * 100 + "\n", "line 1: nested more than 32 levels deep"),
])
def test_aliases_and_deep_nesting_are_refused_before_the_tree_is_walked(api, text, expected):
    response = _import(api, text)
    assert response.status_code == 400 and response.json()["code"] == "invalid_taxonomy"
    assert response.json()["detail"].startswith(expected)
    assert not Taxonomy.objects.exists()


def test_too_many_values_are_refused(api, monkeypatch):
    monkeypatch.setattr(yaml_import, "MAX_YAML_NODES", 50)
    text = "10 Finance:\n  keywords: [" + ", ".join(f"k{n}" for n in range(60)) + "]\n"
    response = _import(api, text)
    assert response.status_code == 400 and response.json()["detail"].startswith("line 2: the file holds more than 50")


def test_the_page_refuses_a_large_or_non_utf8_upload_with_its_reason(api):
    big = SimpleUploadedFile("big.yaml", b"10 Finance: " + b"x" * (yaml_import.MAX_BYTES + 10))
    response = api.post("/classifier/taxonomies/import/", {"name": "big", "file": big})
    assert response.status_code == 413
    assert "Import refused: the taxonomy file is larger than 2 MB" in response.content.decode()
    latin = SimpleUploadedFile("latin.yaml", "10 Finance: money\n20 Café: x\n".encode("latin-1"))
    response = api.post("/classifier/taxonomies/import/", {"name": "latin", "file": latin}, follow=True)
    assert "latin.yaml line 2: not UTF-8 (byte 0xe9)" in response.content.decode()
    bomb = SimpleUploadedFile("bomb.yaml", billion_laughs().encode())
    response = api.post("/classifier/taxonomies/import/", {"name": "bomb", "file": bomb}, follow=True)
    assert "line 2: the alias *a is not allowed" in response.content.decode()
    assert not Taxonomy.objects.exists()


def test_the_classify_command_names_the_line(db, admin_user, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    with pytest.raises(CommandError, match=r"^line 2: the alias \*a is not allowed"):
        call_command("classify", str(bomb), str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO())
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("10 Café: x\n".encode("latin-1"))
    with pytest.raises(CommandError, match="latin.yaml line 1: not UTF-8"):
        call_command("classify", str(latin), str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO())


def test_a_labeled_csv_it_cannot_read_names_the_line(api, jd_version):
    rows = "receipt milk bread,10.06.03\n" + "x" * 200_000 + ",10.06.03\n"
    response = api.post("/api/classifier/taxonomies/jd/calibrate/", json.dumps({"labeled_csv": rows, "depth": 2}),
                        content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_csv"
    assert response.json()["detail"].startswith("labeled CSV line 2: field larger than field limit")
