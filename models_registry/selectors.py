"""Reads of the model registry. Every signed-in user may look; changes need an operator (services check)."""
from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from models_registry.models import Download, ModelProfile, NodeHubToken, NodeWeights, RepoSnapshot, WeightsDeletion
from nodes.models import Node


def profile_list(*, user: User, engine: str = "", task: str = "", search: str = "") -> QuerySet[ModelProfile]:
    qs = ModelProfile.objects.select_related("created_by").order_by("name")
    if engine:
        qs = qs.filter(engine=engine)
    if task:
        qs = qs.filter(task=task)
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(repo_id__icontains=search)
    return qs


def profile_get(*, user: User, profile_id: int | None = None, name: str | None = None) -> ModelProfile:
    qs = ModelProfile.objects.select_related("created_by")
    profile = qs.filter(pk=profile_id).first() if profile_id is not None else qs.filter(name=name).first()
    if profile is None:
        raise Http404(f"No model profile {profile_id if profile_id is not None else name!r}.")
    return profile


def download_list(*, user: User, status: str = "", node: str = "", repo_id: str = "") -> QuerySet[Download]:
    qs = Download.objects.select_related("node", "profile", "requested_by")
    if status:
        qs = qs.filter(status=status)
    if node:
        qs = qs.filter(node__name=node)
    if repo_id:
        qs = qs.filter(repo_id=repo_id)
    return qs


def download_get(*, user: User, download_id: int) -> Download:
    download = Download.objects.select_related("node", "profile").filter(pk=download_id).first()
    if download is None:
        raise Http404(f"No download {download_id}.")
    return download


def latest_downloads_by_repo(*, node: Node | None = None) -> dict[str, Download]:
    """The newest download row per repo (on a node), for status badges next to profiles."""
    qs = Download.objects.select_related("node").order_by("repo_id", "-created_at")
    if node is not None:
        qs = qs.filter(node=node)
    latest: dict[str, Download] = {}
    for download in qs:
        latest.setdefault(download.repo_id, download)
    return latest


def hub_token_status(*, node: Node) -> dict:
    """Whether a node has a token, who set it and when; never the token itself."""
    row = NodeHubToken.objects.select_related("set_by").filter(node=node).first()
    if row is None:
        return {"node": node.name, "token_set": False, "set_by": None, "set_at": None}
    return {"node": node.name, "token_set": True, "set_by": row.set_by.get_username() if row.set_by else None,
            "set_at": row.set_at}


GB = 1e9


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def weights_overview(*, user: User, node_name: str = "") -> list[dict]:
    """Every node's latest scan of its cache, each repo with the profiles naming it (none: an orphan), the
    live servers on that node using it and whether a deletion of it is under way there."""
    from models_registry.in_use import weights_in_use_by
    from nodes.models import Node

    nodes = list(Node.objects.order_by("name").filter(**({"name": node_name} if node_name else {})))
    scans = {w.node_id: w for w in NodeWeights.objects.filter(node__in=nodes)}
    profiles: dict[str, list[str]] = {}
    for name, repo_id in ModelProfile.objects.filter(source=ModelProfile.Source.HUB).values_list("name", "repo_id"):
        profiles.setdefault(repo_id.lower(), []).append(name)
    live = {key: [f"{u['name']}:{u['port']} ({u['status']})" for u in users]
            for key, users in weights_in_use_by(node_ids=[n.pk for n in nodes]).items()}
    deletions: dict[int, list[WeightsDeletion]] = {}
    for d in WeightsDeletion.objects.filter(node__in=nodes).order_by("-created_at", "-id"):
        if len(deletions.setdefault(d.node_id, [])) < 5:
            deletions[d.node_id].append(d)
    overview = []
    for node in nodes:
        scan = scans.get(node.pk)
        deleting = {d.repo_id for d in deletions.get(node.pk, []) if d.status in WeightsDeletion.ACTIVE}
        rows = []
        for r in (scan.repos if scan else []):
            key = r["repo_id"].lower()
            rows.append({**r, "size_gb": round(r["size_bytes"] / GB, 2), "last_used": _ts(r.get("last_accessed")),
                         "last_modified_at": _ts(r.get("last_modified")),
                         "profiles": sorted(profiles.get(key, [])), "orphan": key not in profiles,
                         "in_use": live.get((node.pk, key), []), "deleting": r["repo_id"] in deleting})
        overview.append({
            "node": node, "scan": scan, "rows": rows, "deletions": deletions.get(node.pk, []),
            "scanned_at": scan.scanned_at if scan else None, "pending": bool(scan and scan.pending),
            "path": scan.path if scan else "", "error": scan.error if scan else "",
            "warnings": scan.warnings if scan else [],
            "free_gb": round(scan.free_bytes / GB, 1) if scan and scan.free_bytes is not None else None,
            "total_gb": round(scan.total_bytes / GB, 1) if scan and scan.total_bytes is not None else None,
            "used_gb": round(sum(r["size_bytes"] for r in rows) / GB, 2),
        })
    return overview


def weights_deletion_get(*, user: User, deletion_id: int) -> WeightsDeletion:
    deletion = WeightsDeletion.objects.select_related("node").filter(pk=deletion_id).first()
    if deletion is None:
        raise Http404(f"No weights deletion {deletion_id}.")
    return deletion


def repo_lookup_get(*, user: User, snapshot_id: int) -> RepoSnapshot:
    snap = RepoSnapshot.objects.select_related("lookup_node").filter(pk=snapshot_id).first()
    if snap is None:
        raise Http404(f"No hub look-up {snapshot_id}.")
    return snap


def repo_lookup_for_profile(*, profile: ModelProfile) -> RepoSnapshot | None:
    if profile.source != ModelProfile.Source.HUB:
        return None
    return RepoSnapshot.objects.select_related("lookup_node").filter(
        repo_id=profile.repo_id, revision=profile.revision or "main").first()


def repo_lookup_state(snap: RepoSnapshot | None) -> dict:
    """What a page says about a look-up: its status and message, a lost one (no worker) shown as failed."""
    from models_registry.services.lookups import lookup_lost, lookup_lost_message

    if snap is None or snap.lookup_requested_at is None and not snap.files:
        return {"status": "", "error": "", "active": False}
    if lookup_lost(snap):
        return {"status": "failed", "error": lookup_lost_message(snap), "active": False}
    return {"status": snap.lookup_status, "error": snap.lookup_error, "active": snap.lookup_active}


def node_list(*, names: list[str] | None = None) -> QuerySet[Node]:
    from nodes.models import Node

    qs = Node.objects.order_by("name")
    return qs.filter(name__in=names) if names else qs
