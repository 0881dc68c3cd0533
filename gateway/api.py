"""REST: mark servers load-on-demand / unload-when-idle (operators). The servers app owns the change."""
from ninja import Router

from accounts.services import client_ip
from gateway.schemas import OnDemandIn, OnDemandOut
from servers import selectors as server_selectors
from servers import services as server_services

router = Router()


@router.put("/servers/{server_id}/on-demand", response=OnDemandOut)
def server_on_demand_set(request, server_id: int, payload: OnDemandIn):
    server = server_selectors.server_get_visible(user=request.user, server_id=server_id)
    return server_services.server_on_demand_set(user=request.user, server=server,
                                                load_on_demand=payload.load_on_demand,
                                                unload_idle_minutes=payload.unload_idle_minutes,
                                                ip=client_ip(request))
