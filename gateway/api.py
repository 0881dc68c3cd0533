"""REST: mark servers load-on-demand / unload-when-idle (operators; the servers app owns the change); the fair
queue's weights (admins) and caps (operators)."""
from django.shortcuts import get_object_or_404
from ninja import Router

from accounts.models import User
from accounts.services import client_ip
from gateway.admission import services as queue_services
from gateway.schemas import CapacityIn, CapacityOut, OnDemandIn, OnDemandOut, QueueWeightIn, QueueWeightOut
from models_registry.models import ModelProfile
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


@router.put("/queue/weights/{user_id}", response=QueueWeightOut)
def queue_weight_set(request, user_id: int, payload: QueueWeightIn):
    user = get_object_or_404(User, pk=user_id)
    row = queue_services.queue_weight_set(actor=request.user, user=user, weight=payload.weight,
                                          ip=client_ip(request))
    return {"user_id": user.pk, "weight": row.weight}


@router.put("/queue/capacity", response=CapacityOut)
def server_capacity_set(request, payload: CapacityIn):
    server = server_selectors.server_get_visible(user=request.user, server_id=payload.server_id) \
        if payload.server_id is not None else None
    profile = get_object_or_404(ModelProfile, pk=payload.profile_id) if payload.profile_id is not None else None
    queue_services.server_capacity_set(actor=request.user, server=server, profile=profile,
                                       max_in_flight=payload.max_in_flight, ip=client_ip(request))
    return {"server_id": payload.server_id, "profile_id": payload.profile_id, "max_in_flight": payload.max_in_flight}
