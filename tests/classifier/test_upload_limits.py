"""Uploads are refused by size before they reach the disk (413 from the real daphne), and an Office file
whose zip unpacks past the limit is never opened by its reader."""
import asyncio
import time
import zipfile

import httpx
import pytest

from classifier.archive import extract
from sparkportal.lib.bodylimit import body_limit_wrap
from tests.conftest import start_daphne, stop_process, subprocess_env


@pytest.fixture
def small_limit_server(transactional_db, tmp_path):
    server = start_daphne(subprocess_env(PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES="1000", PORTAL_VAR_DIR=str(tmp_path)))
    yield server, tmp_path
    stop_process(server.proc)


def test_an_upload_over_the_limit_gets_a_413_before_it_is_stored(small_limit_server):
    server, var = small_limit_server
    body = b"x" * (3 * 2**20)
    started = time.monotonic()
    response = httpx.post(f"{server.url}/api/classifier/uploads/", files={"files": ("big.txt", body)}, timeout=30)
    assert response.status_code == 413 and time.monotonic() - started < 5
    assert response.json()["code"] == "too_large" and "larger than 1 MB" in response.json()["detail"]

    response = httpx.post(f"{server.url}/classifier/taxonomies/import/", files={"file": ("t.yaml", body)}, timeout=30)
    assert response.status_code == 413
    assert not (var / "classifier" / "uploads").exists()
    # a small body still reaches the portal, which refuses it for want of a login
    small = httpx.post(f"{server.url}/api/classifier/uploads/", files={"files": ("a.txt", b"hi")}, timeout=30)
    assert small.status_code in (401, 403)


def test_an_office_file_that_unpacks_past_the_limit_is_classified_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "MAX_OFFICE_UNPACKED_BYTES", 2**20)
    bomb = tmp_path / "quarterly_report.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:t>" + "a" * (5 * 2**20) + "</w:t>")
    assert bomb.stat().st_size < 100_000
    text, how = extract.extract(bomb, size=bomb.stat().st_size, mtime=0)
    assert how == "metadata (not opened: unpacks to 5 MB, over the limit of 1 MB)"
    assert text.startswith("quarterly report docx [")


def test_a_body_without_a_length_is_cut_off_once_it_streams_past_the_limit():
    seen = []

    async def app(scope, receive, send):
        while (message := await receive())["type"] == "http.request":
            seen.append(len(message["body"]))
            if not message.get("more_body"):
                break
        else:
            return  # Django's handler gives up when the client goes away
        await send({"type": "http.response.start", "status": 200, "headers": []})

    chunks = iter([{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 3)
    sent = []

    async def receive():
        return next(chunks)

    async def send(message):
        sent.append(message)

    limited = body_limit_wrap(app, lambda: [("/up/", 1000)])
    asyncio.run(limited({"type": "http", "path": "/up/", "headers": []}, receive, send))
    assert seen == [600] and sent[0]["status"] == 413
