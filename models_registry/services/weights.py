"""Weights on disk: what the node's cache holds, which profiles use it, and deleting it safely."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from accounts.models import User
from accounts.services import audit_record
from models_registry import clients, validation
from models_registry.models import Download, ModelProfile
from sparkportal.exceptions import InvalidTransition, NotFound, ValidationFailed

GB = 1e9
LIVE_SERVER_STATUSES = ("queued", "starting", "ready")


@dataclass
class WeightsRow:
    repo_id: str
    size_bytes: int
    nb_files: int
    last_used: datetime
    last_modified: datetime
    revisions: list[str]
    profiles: list[str]
    path: str

    @property
    def size_gb(self) -> float:
        return round(self.size_bytes / GB, 2)

    @property
    def orphan(self) -> bool:
        """In the cache, but no profile names it."""
        return not self.profiles


def weights_list() -> dict:
    """This host's cache (huggingface_hub's scan), with the profiles that use each repo and the free disk."""
    repos, warnings = clients.scan()
    by_repo: dict[str, list[str]] = {}
    for name, repo_id in ModelProfile.objects.filter(source=ModelProfile.Source.HUB).values_list("name", "repo_id"):
        by_repo.setdefault(repo_id.lower(), []).append(name)
    rows = [WeightsRow(repo_id=r.repo_id, size_bytes=r.size_bytes, nb_files=r.nb_files,
                       last_used=datetime.fromtimestamp(r.last_accessed, tz=UTC),
                       last_modified=datetime.fromtimestamp(r.last_modified, tz=UTC), revisions=r.revisions,
                       profiles=sorted(by_repo.get(r.repo_id.lower(), [])), path=r.path) for r in repos]
    folder = clients.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(folder)
    return {"rows": rows, "warnings": warnings, "path": str(folder), "free_gb": round(usage.free / GB, 1),
            "total_gb": round(usage.total / GB, 1), "used_gb": round(sum(r.size_bytes for r in rows) / GB, 2)}


def servers_using(repo_id: str):
    from servers.models import Server

    return Server.objects.select_related("profile", "node").filter(
        profile__repo_id__iexact=repo_id, status__in=LIVE_SERVER_STATUSES)


@transaction.atomic
def weights_delete(*, repo_id: str, actor: User | None, node=None, confirm: str = "", ip: str | None = None) -> int:
    """Delete a repo's weights from this host's cache; refused while a server uses them. Returns bytes freed.

    `confirm` must repeat the repo id: deleting tens of gigabytes deserves a second look.
    """
    if (msg := validation.check_repo_id(repo_id)) is not None:
        raise ValidationFailed(msg)
    if confirm != repo_id:
        raise ValidationFailed(f"To delete the weights of {repo_id}, confirm by typing the repo id exactly.",
                               code="confirmation_required")
    users = list(servers_using(repo_id))
    if users:
        names = ", ".join(f"{s.served_model_name} on {s.node.name}:{s.port} ({s.status})" for s in users)
        raise InvalidTransition(f"The weights of {repo_id} are in use by {names}: stop those servers first.",
                                code="weights_in_use")
    if Download.objects.filter(repo_id=repo_id, status__in=Download.ACTIVE).exists():
        raise InvalidTransition(f"{repo_id} is downloading right now: cancel the download first.",
                                code="download_running")
    if not clients.repo_folder(repo_id).exists():
        raise NotFound(f"No weights of {repo_id} on this node ({clients.cache_dir()}).")
    freed = clients.delete_repo(repo_id=repo_id)
    audit_record(actor=actor, action="models.weights.deleted", target_type="models_registry.weights",
                 target_id=repo_id, ip=ip, details={"repo_id": repo_id, "freed_gb": round(freed / GB, 2),
                                                   "node": getattr(node, "name", None)})
    return freed
