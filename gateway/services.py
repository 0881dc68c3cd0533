"""Gateway writes: servers' last request time, load on demand, idle unload, conversations."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from servers.models import Server
from sparkportal.exceptions import Unavailable, ValidationFailed

log = logging.getLogger(__name__)


def server_requests_touch(*, seen: dict[int, datetime]) -> None:
    """Advance Server.last_request_at (what idle unload reads); never moves it backwards."""
    for server_id, at in seen.items():
        Server.objects.filter(pk=server_id).filter(Q(last_request_at__isnull=True) | Q(last_request_at__lt=at)) \
            .update(last_request_at=at)


def servers_idle(*, now: datetime | None = None) -> list[Server]:
    """Ready servers marked "unload when idle" whose last request ended N minutes ago."""
    now = now or timezone.now()
    candidates = Server.objects.filter(status=Server.Status.READY, unload_idle_minutes__isnull=False,
                                       unload_idle_minutes__gt=0)
    idle = []
    for server in candidates:
        last = max(filter(None, [server.last_request_at, server.ready_at, server.started_at]), default=None)
        if last is None or last <= now - timedelta(minutes=server.unload_idle_minutes):
            idle.append(server)
    return idle



def server_load_on_demand(*, server_id: int, user_id: int) -> None:
    """Start a stopped server marked "load on demand" for a request (the gateway calls this).

    The operator who marked the server allowed these starts, so no role is checked here; admission
    (port, memory planner, flags) is the supervisor's, as for a start from the Servers page. The row
    lock plus the status check make concurrent calls start it once: the second sees it queued.
    """
    from accounts.models import User
    from accounts.services import audit_record
    from servers import lifecycle, planner
    from sparkportal.celery import app

    with transaction.atomic():
        # of=self: PostgreSQL cannot lock the nullable side (profile) of the outer join.
        locked = Server.objects.select_for_update(of=("self",)).select_related("node", "profile").get(pk=server_id)
        if locked.status in (Server.Status.QUEUED, Server.Status.STARTING, Server.Status.READY):
            return
        if not locked.load_on_demand:
            raise Unavailable("its server is not marked load on demand")
        if locked.status not in (Server.Status.STOPPED, Server.Status.FAILED):
            raise Unavailable(f"its server is {locked.status}")
        if locked.profile is None:
            raise Unavailable("its server has no profile to start from")
        lifecycle.check_port(node=locked.node, port=locked.port, exclude_id=locked.pk)
        planner.plan_start(node=locked.node, profile=locked.profile,
                           gpu_memory_utilization=locked.gpu_memory_utilization,
                           cuda_visible_devices=locked.cuda_visible_devices, exclude_id=locked.pk).raise_if_refused()
        argv = lifecycle.launch_argv(server=locked, profile=locked.profile, node=locked.node)
        who = User.objects.filter(pk=user_id).first()
        server = lifecycle.transition(locked.pk, to=Server.Status.QUEUED, argv=argv, failure_code="",
                                      restart_attempts=0, next_restart_at=None,
                                      reason=f"loaded on demand for a request of {who}")
        audit_record(actor=None, actor_name="gateway", action="gateway.server.loaded_on_demand", target=server,
                     details={"requested_by": str(who), "model": server.served_model_name})
        queue = server.node.queue
        transaction.on_commit(lambda: app.send_task("servers.tasks.server_launch_task", args=[server.pk],
                                                    queue=queue))


def servers_unload_idle(*, now: datetime | None = None) -> list[int]:
    """Stop ready servers marked "unload when idle" whose last request ended N minutes ago.

    Never while a request is in flight on it: the gateways register every request in Redis
    (accounts.limits.server_inflight_count) until its stream has ended.
    """
    from accounts import limits
    from accounts.services import audit_record
    from servers import lifecycle
    from sparkportal.celery import app

    stopped = []
    for server in servers_idle(now=now):
        if limits.server_inflight_count(server.pk):
            continue
        with transaction.atomic():
            locked = Server.objects.select_for_update().get(pk=server.pk)
            if locked.status != Server.Status.READY or limits.server_inflight_count(server.pk):
                continue
            server = lifecycle.transition(locked.pk, to=Server.Status.STOPPING,
                                          reason=f"idle for {locked.unload_idle_minutes} min: unloaded "
                                                 "(a request loads it again when it is marked load on demand)")
            audit_record(actor=None, actor_name="gateway", action="gateway.server.unloaded_idle", target=server,
                         details={"idle_minutes": locked.unload_idle_minutes})
            queue = server.node.queue
            transaction.on_commit(lambda s=server.pk, q=queue: app.send_task("servers.tasks.server_stop_task",
                                                                              args=[s], queue=q))
            stopped.append(server.pk)
    return stopped


@transaction.atomic
def server_on_demand_set(*, user, server: Server, load_on_demand: bool, unload_idle_minutes: int | None,
                         ip: str | None = None) -> Server:
    """Mark a server to be started by the first request for its model, and/or stopped when idle."""
    from accounts.selectors import require_operator
    from accounts.services import audit_record

    require_operator(user)
    if unload_idle_minutes is not None and unload_idle_minutes < 1:
        raise ValidationFailed("Unload after at least 1 idle minute, or leave it empty to keep the server loaded.")
    if load_on_demand and server.profile_id is None:
        raise ValidationFailed("A server found running (no profile) cannot be loaded on demand: start a profile.")
    locked = Server.objects.select_for_update().get(pk=server.pk)
    old = {"load_on_demand": locked.load_on_demand, "unload_idle_minutes": locked.unload_idle_minutes}
    Server.objects.filter(pk=server.pk).update(load_on_demand=load_on_demand, unload_idle_minutes=unload_idle_minutes)
    new = {"load_on_demand": load_on_demand, "unload_idle_minutes": unload_idle_minutes}
    if new != old:
        audit_record(actor=user, action="gateway.server.on_demand_changed", target=locked, ip=ip,
                     details={"old": old, "new": new, "model": locked.served_model_name})
    locked.refresh_from_db()
    return locked


def server_failure_reason(*, server_id: int) -> str:
    server = Server.objects.filter(pk=server_id).only("status", "status_reason").first()
    if server is None:
        return "its server was removed"
    return server.status_reason or f"it is {server.status}"


@transaction.atomic
def conversation_create(*, user, model: str, system_prompt: str = "", title: str = ""):
    from gateway.models import Conversation

    conversation = Conversation(user=user, model=model[:200], system_prompt=system_prompt, title=title[:200])
    conversation.full_clean()
    conversation.save()
    return conversation


@transaction.atomic
def chat_message_add(*, conversation, role: str, content: str):
    from gateway.models import ChatMessage, Conversation

    if role not in ChatMessage.Role.values:
        raise ValidationFailed(f"Unknown role {role!r}: use user or assistant.")
    if not content.strip():
        raise ValidationFailed("The message is empty: type something first.")
    message = ChatMessage.objects.create(conversation=conversation, role=role, content=content)
    fields = {"updated_at": message.created_at}
    if role == "user" and not conversation.title:
        fields["title"] = content.strip().splitlines()[0][:80]
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    return message


@transaction.atomic
def conversation_delete(*, conversation) -> None:
    conversation.delete()


def cost_settings_ensure():
    """The Cost view's settings row; created on first use with the field notes' defaults, together
    with their price table (so an admin who deletes every price does not get them back)."""
    from gateway import cost
    from gateway.models import ApiPrice, CostSettings

    with transaction.atomic():
        settings_row, created = CostSettings.objects.get_or_create(pk=1)
        if created and not ApiPrice.objects.exists():
            ApiPrice.objects.bulk_create([ApiPrice(name=name, input_per_million=inp, output_per_million=out)
                                          for name, inp, out in cost.DEFAULT_PRICES])
    return settings_row


def _price_state(price) -> dict:
    return {"name": price.name, "input_per_million": str(price.input_per_million),
            "output_per_million": str(price.output_per_million)}


@transaction.atomic
def api_price_save(*, actor, price=None, name: str, input_per_million, output_per_million,
                   ip: str | None = None):
    """Create a price row (price=None) or change one; admins only, audited."""
    from django.core.exceptions import ValidationError

    from accounts.selectors import require_admin
    from accounts.services import audit_record
    from gateway.models import ApiPrice

    require_admin(actor)
    if price is None:
        price, old = ApiPrice(), None
    else:
        price = ApiPrice.objects.select_for_update().get(pk=price.pk)
        old = _price_state(price)
    price.name = name.strip()
    price.input_per_million = input_per_million
    price.output_per_million = output_per_million
    try:
        price.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(_validation_text(exc, {"name": "Name", "input_per_million": "Input price",
                                                      "output_per_million": "Output price"})) from None
    price.save()
    new = _price_state(price)
    if new != old:
        audit_record(actor=actor, action="gateway.api_price.created" if old is None else "gateway.api_price.changed",
                     target=price, ip=ip, details={"old": old, "new": new})
    return price


@transaction.atomic
def api_price_delete(*, actor, price, ip: str | None = None) -> None:
    from accounts.selectors import require_admin
    from accounts.services import audit_record

    require_admin(actor)
    audit_record(actor=actor, action="gateway.api_price.deleted", target=price, ip=ip,
                 details={"old": _price_state(price)})
    price.delete()


@transaction.atomic
def cost_settings_set(*, actor, electricity_per_kwh, hardware_cost, load_watts: int, idle_watts: int,
                      ip: str | None = None):
    """Change the price per kWh, the hardware cost and the fallback wattages; admins only, audited."""
    from django.core.exceptions import ValidationError

    from accounts.selectors import require_admin
    from accounts.services import audit_record
    from gateway.models import CostSettings

    require_admin(actor)
    cost_settings_ensure()
    row = CostSettings.objects.select_for_update().get(pk=1)
    fields = ("electricity_per_kwh", "hardware_cost", "load_watts", "idle_watts")
    old = {f: str(getattr(row, f)) for f in fields}
    row.electricity_per_kwh, row.hardware_cost = electricity_per_kwh, hardware_cost
    row.load_watts, row.idle_watts = load_watts, idle_watts
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(_validation_text(exc, {
            "electricity_per_kwh": "Price per kWh", "hardware_cost": "Hardware cost",
            "load_watts": "Watts under load", "idle_watts": "Watts at idle"})) from None
    if row.idle_watts > row.load_watts:
        raise ValidationFailed(f"Watts at idle ({row.idle_watts}) exceed watts under load ({row.load_watts}): "
                               "swap them.")
    row.save()
    new = {f: str(getattr(row, f)) for f in fields}
    if new != old:
        audit_record(actor=actor, action="gateway.cost_settings.changed", target=row, ip=ip,
                     details={"old": old, "new": new})
    return row


def _validation_text(exc, labels: dict[str, str]) -> str:
    parts = []
    for field, messages in exc.message_dict.items():
        label = labels.get(field)
        parts.append(f"{label}: {' '.join(messages)}" if label else " ".join(messages))
    return " ".join(parts)
