"""REST: mark servers load-on-demand / unload-when-idle (operators)."""
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from accounts.services import client_ip
from gateway import services
from servers.models import Server

router = Router()


class OnDemandIn(Schema):
    load_on_demand: bool
    unload_idle_minutes: int | None = None


class OnDemandOut(Schema):
    id: int
    served_model_name: str
    status: str
    load_on_demand: bool
    unload_idle_minutes: int | None


@router.put("/servers/{server_id}/on-demand", response=OnDemandOut)
def server_on_demand_set(request, server_id: int, payload: OnDemandIn):
    server = get_object_or_404(Server, pk=server_id)
    return services.server_on_demand_set(user=request.user, server=server, load_on_demand=payload.load_on_demand,
                                         unload_idle_minutes=payload.unload_idle_minutes, ip=client_ip(request))
