"""REST: servers (start, stop, adopt, status, logs) and the per-node planner. Thin: parse, select, call."""

from django.http import FileResponse, Http404
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from accounts.selectors import require_operator
from accounts.services import client_ip
from models_registry.models import ModelProfile
from nodes import selectors as node_selectors
from nodes.models import Node
from servers import logs, selectors, services
from servers.schemas import (
    AdmissionPlanOut,
    ErrorOut,
    EventOut,
    GroupOnDemandIn,
    GroupOut,
    GroupPreflightIn,
    GroupPreflightOut,
    GroupStartIn,
    LogOut,
    LogQuery,
    NodeOut,
    ServerOut,
    ServerStartIn,
    SleepIn,
    SleepPolicyIn,
    SwapIn,
)
from sparkportal.exceptions import NotFound

router = Router()


def _profile(name: str) -> ModelProfile:
    profile = ModelProfile.objects.filter(name=name).first()
    if profile is None:
        raise NotFound(f"There is no profile named {name!r}: see GET /api/models/profiles/.", code="unknown_profile")
    return profile


def _node(name: str | None) -> Node:
    return node_selectors.node_pick(name=name)


@router.get("/", response=list[ServerOut], summary="List servers")
@paginate
def server_list(request, status: str | None = None):
    qs = selectors.server_list_visible(user=request.user)
    return qs.filter(status=status) if status else qs


@router.get("/nodes", response=list[NodeOut], summary="Nodes with their utilization budget")
def node_list(request):
    return [{"name": row["node"].name, "queue": row["node"].queue, "memory_budget": row["budget"],
             "used": row["used"], "last_heartbeat_at": row["node"].last_heartbeat_at, "engines": row["engines"],
             "servers": [s.pk for s in row["servers"]], "network_interface": row["node"].network_interface,
             "host_ip": row["node"].host_ip} for row in selectors.node_overview()]


@router.get("/plan", response=AdmissionPlanOut, summary="What admission would say about a start (nothing is started)")
def server_plan(request, profile: str, node: str | None = None, gpu_memory_utilization: float | None = None):
    return services.server_plan(node=_node(node), profile=_profile(profile),
                                gpu_memory_utilization=gpu_memory_utilization).as_dict()


@router.post("/", response={201: ServerOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
             summary="Start a server from a profile")
def server_start(request, payload: ServerStartIn):
    server = services.server_start(user=request.user, profile=_profile(payload.profile), node=_node(payload.node),
                                   port=payload.port, gpu_memory_utilization=payload.gpu_memory_utilization,
                                   cuda_visible_devices=payload.cuda_visible_devices,
                                   restart_policy=payload.restart_policy, allow_replica=payload.allow_replica,
                                   ip=client_ip(request))
    return Status(201, server)


@router.get("/groups", response=list[GroupOut], summary="Multi-node servers (groups of ranks)")
def group_list(request):
    return list(selectors.group_list_visible(user=request.user)[:200])


@router.post("/groups", response={201: GroupOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
             summary="Start a multi-node profile on its nodes (named, the leader first, or picked by the portal)")
def group_start(request, payload: GroupStartIn):
    nodes = [_node(name) for name in payload.nodes] if payload.nodes else None
    group = services.group_start(user=request.user, profile=_profile(payload.profile), nodes=nodes,
                                 gpu_memory_utilization=payload.gpu_memory_utilization,
                                 restart_policy=payload.restart_policy, allow_replica=payload.allow_replica,
                                 ip=client_ip(request))
    return Status(201, selectors.group_get_visible(user=request.user, group_id=group.pk))


@router.post("/groups/preflight", response={200: GroupPreflightOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
             summary="Check the network of a multi-node placement on every node, starting nothing (operators)")
def group_preflight(request, payload: GroupPreflightIn):
    nodes = [_node(name) for name in payload.nodes] if payload.nodes else None
    return services.group_preflight(user=request.user, profile=_profile(payload.profile), nodes=nodes)


@router.get("/groups/{int:group_id}", response=GroupOut, summary="One multi-node server with its ranks")
def group_detail(request, group_id: int):
    return selectors.group_get_visible(user=request.user, group_id=group_id)


@router.post("/groups/{int:group_id}/stop", response={202: GroupOut, 409: ErrorOut},
             summary="Stop every rank of a multi-node server")
def group_stop(request, group_id: int):
    group = selectors.group_get_visible(user=request.user, group_id=group_id)
    services.group_stop(user=request.user, group=group, ip=client_ip(request))
    return Status(202, selectors.group_get_visible(user=request.user, group_id=group_id))


@router.post("/groups/{int:group_id}/start", response={202: GroupOut, 400: ErrorOut, 409: ErrorOut},
             summary="Start a stopped or failed multi-node server again on its nodes")
def group_restart(request, group_id: int):
    group = selectors.group_get_visible(user=request.user, group_id=group_id)
    services.group_restart(user=request.user, group=group, ip=client_ip(request))
    return Status(202, selectors.group_get_visible(user=request.user, group_id=group_id))


@router.put("/groups/{int:group_id}/on-demand", response={200: GroupOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
            summary="Load a multi-node server on demand and/or unload it when idle, every rank (operators)")
def group_on_demand_set(request, group_id: int, payload: GroupOnDemandIn):
    group = selectors.group_get_visible(user=request.user, group_id=group_id)
    services.group_on_demand_set(user=request.user, group=group, load_on_demand=payload.load_on_demand,
                                 unload_idle_minutes=payload.unload_idle_minutes, ip=client_ip(request))
    return selectors.group_get_visible(user=request.user, group_id=group_id)


@router.get("/{int:server_id}", response=ServerOut, summary="One server")
def server_detail(request, server_id: int):
    return selectors.server_get_visible(user=request.user, server_id=server_id)


@router.get("/{int:server_id}/events", response=list[EventOut], summary="Status history")
def server_events(request, server_id: int):
    return selectors.server_events(server=selectors.server_get_visible(user=request.user, server_id=server_id))


@router.post("/{int:server_id}/stop", response={202: ServerOut, 409: ErrorOut}, summary="Stop a server")
def server_stop(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return Status(202, services.server_stop(user=request.user, server=server, ip=client_ip(request)))


@router.post("/{int:server_id}/start", response={202: ServerOut, 409: ErrorOut},
             summary="Start a stopped or failed server again")
def server_restart(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return Status(202, services.server_restart(user=request.user, server=server, ip=client_ip(request)))


@router.post("/{int:server_id}/adopt", response={200: ServerOut, 409: ErrorOut},
             summary="Adopt an engine found running")
def server_adopt(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return services.server_adopt(user=request.user, server=server, ip=client_ip(request))


@router.post("/{int:server_id}/clear", response={200: ServerOut, 409: ErrorOut},
             summary="Clear a stopped or failed server from the list (its history and audit stay)")
def server_clear(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return services.server_clear(user=request.user, server=server, ip=client_ip(request))


@router.post("/{int:server_id}/sleep", response={202: ServerOut, 400: ErrorOut, 409: ErrorOut},
             summary="Put a server to sleep (sleep mode; operators)")
def server_sleep(request, server_id: int, payload: SleepIn):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return Status(202, services.server_sleep(user=request.user, server=server, level=payload.level,
                                             ip=client_ip(request)))


@router.post("/{int:server_id}/wake", response={202: ServerOut, 400: ErrorOut, 409: ErrorOut},
             summary="Wake a sleeping server (operators)")
def server_wake(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return Status(202, services.server_wake(user=request.user, server=server, ip=client_ip(request)))


@router.post("/swap", response={202: ServerOut, 400: ErrorOut, 409: ErrorOut},
             summary="Put one server to sleep and wake another in its place, as one admission (operators)")
def server_swap(request, payload: SwapIn):
    going = selectors.server_get_visible(user=request.user, server_id=payload.sleep)
    coming = selectors.server_get_visible(user=request.user, server_id=payload.wake)
    return Status(202, services.server_swap(user=request.user, sleep=going, wake=coming, level=payload.level,
                                            ip=client_ip(request)))


@router.put("/{int:server_id}/sleep-policy", response={200: ServerOut, 400: ErrorOut},
            summary="Sleep after N idle minutes (operators)")
def server_sleep_policy(request, server_id: int, payload: SleepPolicyIn):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return services.server_sleep_policy_set(user=request.user, server=server,
                                            sleep_idle_minutes=payload.sleep_idle_minutes, level=payload.level,
                                            ip=client_ip(request))


@router.get("/{int:server_id}/logs", response=LogOut, summary="Tail or search a server's log (operators)")
def server_logs(request, server_id: int, query: Query[LogQuery]):
    require_operator(request.user)
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    return {"server_id": server.pk,
            "lines": logs.server_log_lines(server=server, lines=query.lines, query=query.q)}


@router.get("/{int:server_id}/logs/download", summary="The whole log file (operators)")
def server_log_download(request, server_id: int):
    require_operator(request.user)
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    path = logs.log_path(server.pk)
    if not path.exists():
        raise Http404(f"Server #{server.pk} has no log on this host.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/plain")
