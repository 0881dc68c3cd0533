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
