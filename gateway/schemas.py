"""Schemas of the gateway's REST API (gateway.api)."""
from ninja import Schema


class OnDemandIn(Schema):
    load_on_demand: bool
    unload_idle_minutes: int | None = None


class OnDemandOut(Schema):
    id: int
    served_model_name: str
    status: str
    load_on_demand: bool
    unload_idle_minutes: int | None


class QueueWeightIn(Schema):
    weight: int


class QueueWeightOut(Schema):
    user_id: int
    weight: int


class CapacityIn(Schema):
    server_id: int | None = None
    profile_id: int | None = None
    max_in_flight: int | None  # None removes the cap


class CapacityOut(Schema):
    server_id: int | None
    profile_id: int | None
    max_in_flight: int | None
