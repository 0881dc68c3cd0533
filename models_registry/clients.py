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
from huggingface_hub import HfApi, hf_hub_download, scan_cache_dir, snapshot_download
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import filter_repo_objects

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


def disk_free_bytes() -> int:
    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


def present_bytes(*, repo_id: str, commit: str, files: list[HubFile]) -> tuple[int, set[str]]:
    """Bytes already on disk for these files (complete ones and partial .incomplete blobs), and complete paths."""
    folder = repo_folder(repo_id)
    snapshot_dir = folder / "snapshots" / commit
    done, complete = 0, set()
    for item in files:
        target = snapshot_dir / item.path
        if target.exists():
            done += item.size
            complete.add(item.path)
            continue
        partial = folder / "blobs" / f"{item.etag}.incomplete"
        if partial.exists():
            done += min(partial.stat().st_size, item.size)
    return done, complete


def incomplete_blobs(repo_id: str) -> list[str]:
    """Blob names being written right now (`<etag>.incomplete`): tells which files are in flight."""
    blobs = repo_folder(repo_id) / "blobs"
    try:
        return [name[: -len(".incomplete")] for name in os.listdir(blobs) if name.endswith(".incomplete")]
    except FileNotFoundError:
        return []


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
