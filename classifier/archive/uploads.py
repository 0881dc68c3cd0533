"""Writing an upload (files, or a zip that is unpacked) into its folder, safely: nothing outside the folder,
nothing beyond the size limit. services.upload_store chooses the folder and cleans up after a refusal."""
import re
import zipfile
from pathlib import Path, PurePosixPath

from django.conf import settings

from sparkportal.exceptions import ValidationFailed


def _size_text(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


class UploadFolder:
    """Writes an upload into its folder, refusing names that leave it and stopping at the size limit."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.limit = settings.PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES
        self.total = 0
        self.files = 0

    def too_large(self) -> ValidationFailed:
        return ValidationFailed(f"The upload unpacks to more than {_size_text(self.limit)}: upload fewer files, or "
                                "put them in a folder under an archive root and start the job on that folder.",
                                code="upload_too_large")

    def target(self, parts: list[str]) -> Path:
        """Two uploaded files of the same name both stay: the second becomes 'name (2).ext'."""
        target = self.folder.joinpath(*parts)
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{Path(parts[-1]).stem} ({n}){Path(parts[-1]).suffix}")
        return target

    def write(self, parts: list[str], chunks) -> None:
        target = self.target(parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in chunks:
                self.total += len(chunk)
                if self.total > self.limit:
                    raise self.too_large()
                out.write(chunk)
        self.files += 1

    def add_zip(self, name: str, fh) -> None:
        try:
            archive = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise ValidationFailed(f"{name} is not a readable zip file.", code="bad_zip") from None
        members = [info for info in archive.infolist() if not info.is_dir()]
        if not members:
            raise ValidationFailed(f"{name} holds no files.", code="empty_upload")
        parts = [zip_member_parts(name, info.filename) for info in members]
        # Checked before unpacking: the sizes a zip declares (the writes check again as they go).
        if self.total + sum(info.file_size for info in members) > self.limit:
            raise self.too_large()
        for info, member_parts in zip(members, parts, strict=True):
            try:
                with archive.open(info) as member:
                    self.write(member_parts, iter(lambda m=member: m.read(1 << 20), b""))
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as exc:
                raise ValidationFailed(f"{name}: {info.filename} could not be unpacked ({exc}).",
                                       code="bad_zip") from None

    def add_file(self, name: str, fh) -> None:
        base = PurePosixPath(name.replace("\\", "/")).name
        if base in ("", ".", ".."):
            raise ValidationFailed(f"{name!r} is not a file name.", code="bad_file_name")
        self.write([base], fh.chunks() if hasattr(fh, "chunks") else [fh.read()])


def zip_member_parts(archive_name: str, member: str) -> list[str]:
    """The member's path inside the upload folder; one that would leave it (zip slip) is refused."""
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", member):
        raise ValidationFailed(f"{archive_name}: {member!r} points outside the archive (an absolute path or '..'). "
                               "Zip the folder from inside it and upload again.", code="zip_path_escapes")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts:
        raise ValidationFailed(f"{archive_name}: {member!r} is not a file name.", code="bad_zip")
    return parts
