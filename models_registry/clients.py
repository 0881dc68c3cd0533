"""The one boundary to the Hugging Face Hub and its on-disk cache, through huggingface_hub.

No other module of the app imports huggingface_hub. The endpoint is the portal's setting
(HF_ENDPOINT) passed explicitly on every call, so a test hub on loopback can stand in for it.
Hub failures are turned into `HubError` with a message in plain words that says what to do.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx2
from django.conf import settings
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub import errors as hf_errors
from huggingface_hub.file_download import http_get
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, filter_repo_objects

GB = 1e9


class HubError(Exception):
    """A hub failure explained for a person: `code` is stable for the API, `message` says the fix."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    etag: str  # the blob name in the cache: sha256 for LFS files, git oid otherwise


def endpoint() -> str:
    return settings.PORTAL_HF_ENDPOINT


def cache_dir() -> Path:
    return Path(settings.PORTAL_WEIGHTS_DIR) / "hub"


def repo_folder(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def repo_listing(*, repo_id: str, revision: str, token: str | None) -> tuple[str, list[HubFile]]:
    """Resolve the revision to a commit and list its files with sizes (two hub calls)."""
    api = HfApi(endpoint=endpoint(), token=token or None)
    try:
        info = api.repo_info(repo_id=repo_id, revision=revision, token=token or None)
        files = [
            HubFile(path=f.path, size=int(f.size or 0),
                    etag=(f.lfs.sha256 if f.lfs is not None else f.blob_id) or "")
            for f in api.list_repo_tree(repo_id=repo_id, revision=info.sha, recursive=True, token=token or None)
            if isinstance(f, RepoFile)
        ]
    except Exception as exc:  # noqa: BLE001 - every hub failure gets explained below
        raise explain(exc, repo_id=repo_id, revision=revision) from exc
    return str(info.sha), files


def filter_files(files: list[HubFile], *, allow: list[str] | None, ignore: list[str] | None) -> list[HubFile]:
    """The same filter snapshot_download applies, so totals match what it fetches."""
    keep = set(filter_repo_objects([f.path for f in files], allow_patterns=allow or None,
                                   ignore_patterns=ignore or None))
    return [f for f in files if f.path in keep]


def read_config(*, repo_id: str, revision: str, token: str | None) -> dict:
    """config.json of a repo revision (a small download into the cache)."""
    try:
        path = hf_hub_download(repo_id, "config.json", revision=revision, cache_dir=cache_dir(),
                               endpoint=endpoint(), token=token or None)
    except hf_errors.RemoteEntryNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, repo_id=repo_id, revision=revision) from exc
    return json.loads(Path(path).read_text())


def snapshot(*, repo_id: str, commit: str, token: str | None, allow: list[str] | None, ignore: list[str] | None,
             tqdm_class: type, max_workers: int) -> str:
    """Download (or resume) a snapshot into the cache; the progress hook is the tqdm class."""
    try:
        return snapshot_download(repo_id, revision=commit, cache_dir=cache_dir(), endpoint=endpoint(),
                                 token=token or None, allow_patterns=allow or None, ignore_patterns=ignore or None,
                                 tqdm_class=tqdm_class, max_workers=max_workers)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "portal_passthrough", False):
            raise
        raise explain(exc, repo_id=repo_id, revision=commit) from exc


def write_ref(*, repo_id: str, revision: str, commit: str) -> None:
    """refs/<revision> -> commit. snapshot_download is given the commit, so it does not write the ref, and
    engines started offline (HF_HUB_OFFLINE=1) find the snapshot of a branch through it."""
    if revision == commit:
        return
    ref = repo_folder(repo_id) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(ref.name + ".tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)


def disk_free_bytes() -> int:
    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


def present_bytes(*, repo_id: str, commit: str, files: list[HubFile]) -> tuple[int, set[str], dict[str, int]]:
    """Bytes already on disk for these files: (total, paths complete, {path: bytes of a kept partial})."""
    folder = repo_folder(repo_id)
    snapshot_dir = folder / "snapshots" / commit
    done, complete, partial = 0, set(), {}
    for item in files:
        if (snapshot_dir / item.path).exists() or (folder / "blobs" / item.etag).exists():
            done += item.size
            complete.add(item.path)
            continue
        kept = partial_path(repo_id, item.etag)
        if kept.exists():
            partial[item.path] = min(kept.stat().st_size, item.size)
            done += partial[item.path]
    return done, complete, partial


# huggingface_hub 2.x writes each file to a unique `<etag>.<random>.incomplete` and deletes it when the
# download fails or is interrupted, so it never resumes across attempts by itself. The portal keeps a
# hard link `<etag>.partial` to the file being written: the bytes survive the library's cleanup (and a
# killed worker), and the next attempt continues from them with a Range request.

def partial_path(repo_id: str, etag: str) -> Path:
    return repo_folder(repo_id) / "blobs" / f"{etag}.partial"


def keep_partials(repo_id: str) -> list[str]:
    """Link every file being written to its `<etag>.partial`; returns the etags in flight."""
    blobs = repo_folder(repo_id) / "blobs"
    try:
        names = [n for n in os.listdir(blobs) if n.endswith(".incomplete")]
    except FileNotFoundError:
        return []
    etags = []
    for name in names:
        etag = name.split(".", 1)[0]
        etags.append(etag)
        temp, kept = blobs / name, blobs / f"{etag}.partial"
        try:
            if kept.exists() and os.path.samefile(temp, kept):
                continue
            if kept.exists() and kept.stat().st_size > temp.stat().st_size:
                continue  # an older attempt got further; keep that one
            link = blobs / f"{etag}.partial-new"
            link.unlink(missing_ok=True)
            os.link(temp, link)
            os.replace(link, kept)
        except FileNotFoundError:
            continue  # finished (renamed) or cleaned up in between: nothing to keep
    return etags


def adopt_leftovers(repo_id: str) -> None:
    """Temp files of a worker that was killed: keep their bytes as partials, then remove them."""
    keep_partials(repo_id)
    blobs = repo_folder(repo_id) / "blobs"
    for temp in blobs.glob("*.incomplete") if blobs.exists() else []:
        temp.unlink(missing_ok=True)


def drop_partials(repo_id: str, etags: list[str]) -> None:
    for etag in etags:
        partial_path(repo_id, etag).unlink(missing_ok=True)


def resume_partial(*, repo_id: str, commit: str, item: HubFile, token: str | None, tqdm_class: type) -> None:
    """Finish a kept partial file with a Range request and put it where huggingface_hub expects the blob."""
    kept = partial_path(repo_id, item.etag)
    url = hf_hub_url(repo_id, item.path, revision=commit, endpoint=endpoint())
    try:
        meta = get_hf_file_metadata(url, token=token or None, endpoint=endpoint())
        if meta.etag != item.etag:
            kept.unlink(missing_ok=True)  # the file changed on the hub: start it over
            return
        with kept.open("ab") as out:
            http_get(meta.location, out, resume_size=kept.stat().st_size,
                     headers=build_hf_headers(token=token or None), expected_size=item.size,
                     displayed_filename=item.path, tqdm_class=tqdm_class)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "portal_passthrough", False):
            raise
        raise explain(exc, repo_id=repo_id, revision=commit) from exc
    os.replace(kept, repo_folder(repo_id) / "blobs" / item.etag)


@dataclass(frozen=True)
class CachedRepo:
    repo_id: str
    size_bytes: int
    nb_files: int
    last_accessed: float
    last_modified: float
    revisions: list[str]
    refs: list[str]
    path: str


def scan() -> tuple[list[CachedRepo], list[str]]:
    """Models in the cache (huggingface_hub's scan) and warnings about corrupted folders."""
    folder = cache_dir()
    if not folder.exists():
        return [], []
    info = scan_cache_dir(folder)
    repos = [
        CachedRepo(repo_id=r.repo_id, size_bytes=r.size_on_disk, nb_files=r.nb_files, last_accessed=r.last_accessed,
                   last_modified=r.last_modified, revisions=sorted(rev.commit_hash for rev in r.revisions),
                   refs=sorted(ref for rev in r.revisions for ref in rev.refs), path=str(r.repo_path))
        for r in info.repos if r.repo_type == "model"
    ]
    return sorted(repos, key=lambda r: r.repo_id.lower()), [str(w) for w in info.warnings]


def delete_repo(*, repo_id: str) -> int:
    """Delete every cached revision of a repo, and partial blobs with it; returns the bytes freed."""
    folder = repo_folder(repo_id)
    freed = 0
    if cache_dir().exists():
        info = scan_cache_dir(cache_dir())
        hashes = [rev.commit_hash for r in info.repos if r.repo_id == repo_id and r.repo_type == "model"
                  for rev in r.revisions]
        if hashes:
            strategy = info.delete_revisions(*hashes)
            freed = strategy.expected_freed_size
            strategy.execute()
    if folder.exists():  # what the scan does not count: .incomplete blobs, refs without snapshots
        freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        shutil.rmtree(folder, ignore_errors=True)
    return freed


def local_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def explain(exc: Exception, *, repo_id: str, revision: str) -> HubError:
    """Turn a huggingface_hub / network exception into a plain-words HubError with the fix."""
    where = endpoint()
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, hf_errors.GatedRepoError):
        return HubError("gated", f"{repo_id} is a gated repo: accept its licence on {where}/{repo_id} with the "
                                 "account whose token this node uses, then set that token for the node "
                                 "(Models → Hub tokens) and resume.")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return HubError("revision_not_found", f"{repo_id} has no revision {revision!r}: check the branch, tag or "
                                              "commit in the profile (usually 'main').")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            return HubError("unauthorized", f"The hub refused access to {repo_id} (401): it is private or gated, or "
                                            "the node's token is wrong. Accept the licence / ask for access on the "
                                            "hub, then set a valid token for this node and resume.")
        return HubError("not_found", f"No repo {repo_id} on {where} (404): check the spelling of owner/name.")
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return HubError("not_found", f"A file of {repo_id}@{revision} is missing on the hub (404): {exc}")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            return HubError("unauthorized", f"The hub refused the node's token for {repo_id} (401): set a valid "
                                            "token for this node and resume.")
        return HubError("hub_error", f"The hub answered an error for {repo_id} ({status}): try again later.")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return HubError("disk_full", f"The disk holding {cache_dir()} filled up while downloading {repo_id}: free "
                                     f"space (delete unused weights), then resume; "
                                     f"{disk_free_bytes() / GB:.1f} GB free now.")
    network = (httpx2.TransportError, hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled,
               hf_errors.IncompleteSnapshotError)
    if isinstance(exc, network) or "Consistency check failed" in str(exc):
        return HubError("network", f"Could not reach the hub at {where} ({type(exc).__name__}): the network is down "
                                   "or the hub is unreachable from this node. Check the connection (or HF_ENDPOINT "
                                   "and proxy settings), then resume: what is on disk is kept.")
    return HubError("error", f"Download of {repo_id} failed: {type(exc).__name__}: {exc}")
