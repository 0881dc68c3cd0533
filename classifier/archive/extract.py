"""What a file contributes to the embedding: its name plus the first 4 KB of its text.

Plain text and Markdown are read as they are, HTML with its tags stripped, PDF through pypdf, Word,
Excel and PowerPoint (OOXML) through python-docx / openpyxl / the package's own XML; any other file by
its name and metadata only (type, size, date). A reader that fails falls back to name + metadata.
"""
import datetime as dt
import html
import mimetypes
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

HEAD_BYTES = 4096
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".yaml", ".yml", ".log", ".ini",
                 ".cfg", ".toml", ".py", ".sql", ".sh", ".xml", ".org", ".tex"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
OFFICE_SUFFIXES = {".docx", ".xlsx", ".pptx"}
# An Office file is a zip whose readers inflate whole parts into memory: a few KB can declare gigabytes.
# The declared sizes are checked before any reader opens it (zipfile stops inflating at a member's
# declared size, so the declaration bounds the work).
MAX_OFFICE_UNPACKED_BYTES = 200 * 2**20
MAX_OFFICE_MEMBERS = 10_000


class ArchiveTooLarge(ValueError):
    pass


def office_check(path: Path) -> None:
    """Raise ArchiveTooLarge when the zip inside an Office file unpacks past the limits."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    if len(infos) > MAX_OFFICE_MEMBERS:
        raise ArchiveTooLarge(f"{len(infos)} parts, over the limit of {MAX_OFFICE_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > MAX_OFFICE_UNPACKED_BYTES:
        raise ArchiveTooLarge(f"unpacks to {total // 2**20} MB, over the limit of "
                              f"{MAX_OFFICE_UNPACKED_BYTES // 2**20} MB")


class _Stripper(HTMLParser):
    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8", "cp1251", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "replace")


def _read_head(path: Path, limit: int) -> str:
    with path.open("rb") as fh:
        raw = fh.read(limit)
    text = _decode(raw) if b"\x00" not in raw[:1024] else ""
    return text


def _html(path: Path) -> str:
    stripper = _Stripper()
    stripper.feed(_read_head(path, HEAD_BYTES * 8))
    return html.unescape(_squash(" ".join(stripper.parts)))


def _pdf(path: Path) -> str:
    from pypdf import PdfReader

    parts, size = [], 0
    for page in PdfReader(str(path)).pages:
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text)
        if size >= HEAD_BYTES:
            break
    return _squash(" ".join(parts))


def _docx(path: Path) -> str:
    import docx

    parts, size = [], 0
    for para in docx.Document(str(path)).paragraphs:
        parts.append(para.text)
        size += len(para.text)
        if size >= HEAD_BYTES:
            break
    return _squash(" ".join(parts))


def _xlsx(path: Path) -> str:
    import openpyxl

    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    parts, size = [], 0
    for sheet in book.worksheets:
        parts.append(sheet.title)
        for row in sheet.iter_rows(values_only=True):
            cells = " ".join(str(c) for c in row if c is not None)
            parts.append(cells)
            size += len(cells)
            if size >= HEAD_BYTES:
                return _squash(" ".join(parts))
    return _squash(" ".join(parts))


def _pptx(path: Path) -> str:
    parts, size = [], 0
    with zipfile.ZipFile(path) as archive:
        slides = sorted(n for n in archive.namelist() if re.match(r"ppt/slides/slide\d+\.xml$", n))
        for name in slides:
            text = " ".join(re.findall(r"<a:t>([^<]*)</a:t>", archive.read(name).decode("utf-8", "replace")))
            parts.append(html.unescape(text))
            size += len(text)
            if size >= HEAD_BYTES:
                break
    return _squash(" ".join(parts))


READERS = {".pdf": _pdf, ".docx": _docx, ".xlsx": _xlsx, ".pptx": _pptx}


def metadata_line(path: Path, size: int, mtime: float) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "binary"
    day = dt.datetime.fromtimestamp(mtime, tz=dt.UTC).date().isoformat()
    return f"[{kind}, {size} bytes, {day}]"


def stem_words(path: Path) -> str:
    """'2023-05_restaurant_bill.jpg' -> '2023-05 restaurant bill jpg': names carry meaning for binaries."""
    return re.sub(r"[_\-.]+", " ", path.name).strip()


def extract(path: Path, *, size: int, mtime: float) -> tuple[str, str]:
    """Return (text to embed, how it was read). Never raises for content problems."""
    suffix = path.suffix.lower()
    method = "metadata"
    body = ""
    try:
        if suffix in TEXT_SUFFIXES:
            body, method = _squash(_read_head(path, HEAD_BYTES)), "text"
        elif suffix in HTML_SUFFIXES:
            body, method = _html(path), "html"
        elif suffix in READERS:
            if suffix in OFFICE_SUFFIXES:
                office_check(path)
            body, method = READERS[suffix](path), suffix[1:]
    except ArchiveTooLarge as exc:
        body, method = "", f"metadata (not opened: {exc})"
    except Exception as exc:  # noqa: BLE001 - a broken document is classified by its name
        body, method = "", f"metadata ({type(exc).__name__} reading {suffix})"
    body = body[:HEAD_BYTES]
    if not body:
        return f"{stem_words(path)} {metadata_line(path, size, mtime)}", method if method != "text" else "metadata"
    return f"{stem_words(path)}\n{body}", method
