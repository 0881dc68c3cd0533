import os
from pathlib import Path

import pytest

from classifier.archive import extract, scan
from sparkportal.exceptions import PermissionDenied, ValidationFailed


def _read(path: Path) -> tuple[str, str]:
    st = path.stat()
    return extract.extract(path, size=st.st_size, mtime=st.st_mtime)


def test_each_file_type_gives_its_name_and_text(corpus_dir):
    root, _labels = corpus_dir
    docs = root / "docs"
    text, how = _read(docs / "electricity_bill_april.html")
    assert how == "html" and "Electricity bill" in text and "track()" not in text and "color:red" not in text
    text, how = _read(docs / "аналіз_крові.pdf")
    assert how == "pdf" and "Гемоглобін" in text and text.startswith("аналіз крові pdf")
    text, how = _read(docs / "ремонт_сантехники.docx")
    assert how == "docx" and "сантехник" in text
    text, how = _read(docs / "blood_test_results.md")
    assert how == "text" and "Hemoglobin" in text
    text, how = _read(docs / "IMG_2024_restaurant_bill.jpg")
    assert how == "metadata" and text.startswith("IMG 2024 restaurant bill jpg [image/jpeg, ")


def test_only_the_first_4_kb_is_used(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("a" * 10000)
    text, _ = _read(path)
    assert len(text) <= len("long txt\n") + 4096


def test_spreadsheets_and_broken_documents(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Budget"
    book.active.append(["rent", 900])
    book.save(tmp_path / "budget.xlsx")
    assert "Budget rent 900" in _read(tmp_path / "budget.xlsx")[0]
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    text, how = _read(tmp_path / "broken.pdf")
    assert how.startswith("metadata (") and text.startswith("broken pdf [application/pdf")


def test_paths_outside_the_roots_are_refused_with_the_roots_named(archive, tmp_path_factory):
    root, _ = archive
    with pytest.raises(PermissionDenied, match=f"/etc is outside the archive roots \\({root}, "):
        scan.check_source("/etc")
    with pytest.raises(ValidationFailed, match="is not an absolute path"):
        scan.check_source("docs")
    assert scan.check_source(str(root / "docs")) == (root / "docs").resolve()


def test_no_roots_configured_says_who_sets_them(settings):
    settings.PORTAL_CLASSIFIER_ROOTS = []
    with pytest.raises(ValidationFailed, match="an admin sets PORTAL_CLASSIFIER_ROOTS"):
        scan.check_source("/tmp")


def test_walk_skips_links_out_of_the_roots_huge_and_unreadable_files(settings, tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the classifier")
    (root / "ok.txt").write_text("fine")
    (root / "big.bin").write_bytes(b"x" * 2000)
    (root / "link.txt").symlink_to(outside)
    (root / "sub" / "inner.md").write_text("# inner")
    (root / "dirlink").symlink_to(tmp_path)
    settings.PORTAL_CLASSIFIER_ROOTS = [str(root)]
    found = {f.path.name: f.skip_reason for f in scan.walk(root, include=[], exclude=["*.tmp"], max_bytes=1000)}
    assert found == {"ok.txt": "", "big.bin": "larger than the limit of 1000 bytes",
                     "link.txt": "symlink leads outside the archive roots", "inner.md": "",
                     "dirlink": "symlink leads outside the archive roots"}
    only_md = [f.path.name for f in scan.walk(root, include=["*.md"], exclude=[], max_bytes=1000)]
    assert only_md == ["inner.md"]
    if os.geteuid() != 0:  # root reads everything; the permission case only exists for other users
        (root / "ok.txt").chmod(0)
        assert dict((f.path.name, f.skip_reason) for f in scan.walk(root, include=["ok.txt"], exclude=[],
                                                                     max_bytes=1000))["ok.txt"]
