from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from nodes.models import Node
from servers import planner
from servers.models import Server, ServerEvent, ServerGroup


def server_list_visible(*, user: User) -> QuerySet[Server]:
    """Every server: members see what runs (they chat with it); changing anything needs an operator."""
    return Server.objects.select_related("node", "profile").order_by("node__name", "-created_at")


def server_list_current(*, user: User) -> QuerySet[Server]:
    """The Servers page's list: every server but the stopped and failed ones an operator cleared."""
    return server_list_visible(user=user).filter(cleared_at__isnull=True)


def server_get_visible(*, user: User, server_id: int) -> Server:
    server = server_list_visible(user=user).filter(pk=server_id).first()
    if server is None:
        raise Http404(f"There is no server #{server_id}.")
    return server


def group_list_visible(*, user: User) -> QuerySet[ServerGroup]:
    """Every multi-node group, as every server is visible (members chat with them)."""
    return ServerGroup.objects.select_related("profile").prefetch_related("ranks__node").order_by("-created_at")


def group_get_visible(*, user: User, group_id: int) -> ServerGroup:
    group = group_list_visible(user=user).filter(pk=group_id).first()
    if group is None:
        raise Http404(f"There is no multi-node group #{group_id}.")
    return group


def server_events(*, server: Server, limit: int = 50) -> list[ServerEvent]:
    return list(server.events.all()[:limit])


def node_overview() -> list[dict]:
    """Per node: its live servers, the utilization budget they use, and whether its engines are installed."""
    live = Server.objects.filter(status__in=Server.LIVE).select_related("profile").order_by("port")
    by_node: dict[int, list[Server]] = {}
    for server in live:
        by_node.setdefault(server.node_id, []).append(server)
    rows = []
    for node in Node.objects.order_by("name"):
        servers = by_node.get(node.pk, [])
        unified = planner.is_unified(node)
        share = {s.pk: planner.resident_share(s, unified=unified) for s in servers}
        used = sum(share[s.pk] for s in servers if s.status != Server.Status.EXTERNAL)
        rows.append({"node": node, "servers": servers, "used": round(used, 4), "budget": node.memory_budget,
                     "free": round(max(0.0, node.memory_budget - used), 4),
                     "budget_pct": round(node.memory_budget * 100, 2),
                     "engines": (node.host_facts or {}).get("engines", {}),
                     "segments": [{"server": s, "width": round(share[s.pk] * 100, 2)} for s in servers if share[s.pk]]})
    return rows


# What the model registry's weights page and deletion ask (models_registry.in_use): a stopping server
# has let go of its weights' files, a queued one is about to open them, a sleeper reads them again to wake
# (level 2 drops the weights).
WEIGHTS_HOLDING = (Server.Status.QUEUED, Server.Status.STARTING, Server.Status.READY, Server.Status.SLEEPING,
                   Server.Status.WAKING)


def server_weights_in_use(*, node_ids: list[int]) -> dict[tuple[int, str], list[dict]]:
    """Live servers on these nodes by (node id, repo id in lower case)."""
    users: dict[tuple[int, str], list[dict]] = {}
    rows = Server.objects.filter(node_id__in=node_ids, status__in=WEIGHTS_HOLDING, profile__isnull=False) \
        .values_list("node_id", "profile__repo_id", "served_model_name", "port", "status").order_by("port")
    for node_id, repo_id, name, port, status in rows:
        users.setdefault((node_id, repo_id.lower()), []).append({"name": name, "port": port, "status": status})
    return users


def server_failure_reason(*, server_id: int) -> str:
    """Why a server is not up, in words (what a request that waited for it is told)."""
    server = Server.objects.filter(pk=server_id).select_related("group").only(
        "status", "status_reason", "group__status", "group__status_reason").first()
    if server is None:
        return "its server was removed"
    if server.group_id is not None and server.group.status_reason:  # which rank failed, on which node
        return f"group #{server.group_id}: {server.group.status_reason}"
    return server.status_reason or f"it is {server.status}"
