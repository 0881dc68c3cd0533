"""Reads of the model registry. Every signed-in user may look; changes need an operator (services check)."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from models_registry.models import Download, ModelProfile, NodeHubToken


def profile_list(*, user, engine: str = "", task: str = "", search: str = "") -> QuerySet[ModelProfile]:
    qs = ModelProfile.objects.select_related("created_by").order_by("name")
    if engine:
        qs = qs.filter(engine=engine)
    if task:
        qs = qs.filter(task=task)
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(repo_id__icontains=search)
    return qs


def profile_get(*, user, profile_id: int | None = None, name: str | None = None) -> ModelProfile:
    qs = ModelProfile.objects.select_related("created_by")
    profile = qs.filter(pk=profile_id).first() if profile_id is not None else qs.filter(name=name).first()
    if profile is None:
        raise Http404(f"No model profile {profile_id if profile_id is not None else name!r}.")
    return profile


def download_list(*, user, status: str = "", node: str = "", repo_id: str = "") -> QuerySet[Download]:
    qs = Download.objects.select_related("node", "profile", "requested_by")
    if status:
        qs = qs.filter(status=status)
    if node:
        qs = qs.filter(node__name=node)
    if repo_id:
        qs = qs.filter(repo_id=repo_id)
    return qs


def download_get(*, user, download_id: int) -> Download:
    download = Download.objects.select_related("node", "profile").filter(pk=download_id).first()
    if download is None:
        raise Http404(f"No download {download_id}.")
    return download


def latest_downloads_by_repo(*, node=None) -> dict[str, Download]:
    """The newest download row per repo (on a node), for status badges next to profiles."""
    qs = Download.objects.select_related("node").order_by("repo_id", "-created_at")
    if node is not None:
        qs = qs.filter(node=node)
    latest: dict[str, Download] = {}
    for download in qs:
        latest.setdefault(download.repo_id, download)
    return latest


def hub_token_status(*, node) -> dict:
    """Whether a node has a token, who set it and when; never the token itself."""
    row = NodeHubToken.objects.select_related("set_by").filter(node=node).first()
    if row is None:
        return {"node": node.name, "token_set": False, "set_by": None, "set_at": None}
    return {"node": node.name, "token_set": True, "set_by": row.set_by.get_username() if row.set_by else None,
            "set_at": row.set_at}
