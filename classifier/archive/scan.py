"""Which files a job reads: confined to the configured archive roots, never following links out of them."""
import fnmatch
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from sparkportal.exceptions import PermissionDenied, ValidationFailed


@dataclass
class Found:
    path: Path
    size: int = 0
    mtime: float = 0.0
    skip_reason: str = ""


def uploads_root() -> Path:
    return (Path(settings.VAR_DIR) / "classifier" / "uploads").resolve()


# Added only by `manage.py classify`, for its own process: whoever runs it in a shell can read the path
# anyway; the configured roots guard the web and the API, which never add one.
_command_line_roots: list[Path] = []


@contextmanager
def command_line_root(path: Path) -> Iterator[Path]:
    """Let this process's jobs read `path` (a folder or file given on the command line) while inside."""
    root = Path(os.path.realpath(path.expanduser()))
    _command_line_roots.append(root)
    try:
        yield root
    finally:
        _command_line_roots.remove(root)


def roots() -> list[Path]:
    """The configured archive roots, plus the folder uploaded files are unpacked into (and a command line's)."""
    return [Path(r).resolve() for r in settings.PORTAL_CLASSIFIER_ROOTS] + [uploads_root(), *_command_line_roots]


def inside_roots(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots())


def check_source(path_text: str) -> Path:
    """The folder (or file) a job may read, or an error saying which roots are allowed."""
    if not settings.PORTAL_CLASSIFIER_ROOTS and not _command_line_roots \
            and not Path(path_text.strip() or "/").is_relative_to(uploads_root()):
        raise ValidationFailed("No archive roots are configured: an admin sets PORTAL_CLASSIFIER_ROOTS "
                               "(colon- or comma-separated folders) before jobs can read files.", code="no_roots")
    path = Path(path_text.strip() or ".").expanduser()
    if not path.is_absolute():
        raise ValidationFailed(f"{path_text!r} is not an absolute path: give the full path of a folder under "
                               f"{', '.join(map(str, roots()))}.", code="path_not_absolute")
    if not inside_roots(path):
        raise PermissionDenied(f"{path_text} is outside the archive roots ({', '.join(map(str, roots()))}); "
                               "the classifier reads only there.", code="path_outside_roots")
    if not path.exists():
        raise ValidationFailed(f"{path_text} does not exist.", code="path_missing")
    return Path(os.path.realpath(path))


def _matches(rel: str, name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(source: Path, *, include: list[str], exclude: list[str], max_bytes: int) -> Iterator[Found]:
    """Every file under `source` in a stable order; problems come back as Found(skip_reason=...)."""
    files = [source] if source.is_file() else None
    if files is None:
        files = []
        for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
            dirnames.sort()
            for d in list(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    dirnames.remove(d)
                    files.append(Path(dirpath, d))  # reported below as a skipped link
            files.extend(Path(dirpath, f) for f in sorted(filenames))
    for path in files:
        rel = str(path.relative_to(source)) if path != source else path.name
        if include and not _matches(rel, path.name, include):
            continue
        if exclude and _matches(rel, path.name, exclude):
            continue
        if path.is_symlink():
            if not inside_roots(path):
                yield Found(path, skip_reason="symlink leads outside the archive roots")
                continue
            if path.is_dir():
                yield Found(path, skip_reason="symlinked folder not followed")
                continue
        try:
            stat = path.stat()
        except OSError as exc:
            yield Found(path, skip_reason=f"cannot read: {exc.strerror}")
            continue
        if stat.st_size > max_bytes:
            yield Found(path, size=stat.st_size, skip_reason=f"larger than the limit of {max_bytes} bytes")
            continue
        if not os.access(path, os.R_OK):
            yield Found(path, size=stat.st_size, skip_reason="cannot read: permission denied")
            continue
        yield Found(path, size=stat.st_size, mtime=stat.st_mtime)


def check_target(path_text: str) -> Path:
    """Where an apply plan may write: a folder inside the roots (created if missing), never a source."""
    path = Path(path_text.strip())
    if not path.is_absolute():
        raise ValidationFailed(f"{path_text!r} is not an absolute path.", code="path_not_absolute")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not inside_roots(existing) or not inside_roots(path.parent if not path.exists() else path):
        raise PermissionDenied(f"{path_text} is outside the archive roots ({', '.join(map(str, roots()))}); "
                               "the plan writes only there.", code="path_outside_roots")
    return Path(os.path.realpath(path))
