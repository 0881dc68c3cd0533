"""Reads of the gateway: the routing snapshot and who is calling. Blocking ORM code (see gateway.db)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user

from accounts import limits, revocation
from accounts import services as account_services
from accounts.models import User
from gateway import cost
from models_registry.models import ModelProfile
from servers.models import Server

READY = {Server.Status.READY, Server.Status.EXTERNAL}
STARTING = {Server.Status.QUEUED, Server.Status.STARTING}
LOADABLE = {Server.Status.STOPPED, Server.Status.FAILED}


@dataclass
class ModelServers:
    """Where one model name can be served, as of one snapshot."""

    name: str
    max_model_len: int
    task: str = "chat"
    ready: list[tuple[int, str]] = field(default_factory=list)  # (server id, base url)
    starting: list[int] = field(default_factory=list)
    loadable: list[int] = field(default_factory=list)  # stopped/failed, marked load on demand
    stopping: list[int] = field(default_factory=list)
    idle: list[int] = field(default_factory=list)  # stopped, not loadable


def routing_snapshot() -> dict[str, ModelServers]:
    """Every model name the portal knows, with its servers by state (ready ones first by id)."""
    default_len = settings.PORTAL_GATEWAY_DEFAULT_MAX_MODEL_LEN
    models: dict[str, ModelServers] = {}
    for profile in ModelProfile.objects.only("name", "served_model_name", "repo_id", "max_model_len", "task"):
        models[profile.model_name] = ModelServers(profile.model_name, profile.max_model_len or default_len,
                                                  profile.task)
    servers = (Server.objects.select_related("profile").order_by("pk")
               .only("pk", "served_model_name", "host", "port", "status", "load_on_demand",
                     "profile__max_model_len", "profile__task"))
    for server in servers:
        entry = models.get(server.served_model_name)
        if entry is None:
            profile = server.profile
            entry = models[server.served_model_name] = ModelServers(
                server.served_model_name, (profile.max_model_len if profile else None) or default_len,
                profile.task if profile else "chat")
        if server.status in READY:
            entry.ready.append((server.pk, server.base_url))
        elif server.status in STARTING:
            entry.starting.append(server.pk)
        elif server.status == Server.Status.STOPPING:
            entry.stopping.append(server.pk)
        elif server.load_on_demand:
            entry.loadable.append(server.pk)
        else:
            entry.idle.append(server.pk)
    return models


@dataclass(slots=True)
class Principal:
    """The caller of one request, as the gateway caches it."""

    user_id: int
    username: str
    key_id: int | None
    prefix: str
    scopes: frozenset[str] | None  # None: the key may use all the owner may use
    allowed: frozenset[str] | None  # None: the owner may use every model
    limits: limits.Limits
    expires_at: float | None
    generation: str


def _principal(user: User, *, key=None, generation: str) -> Principal:
    quota = account_services.quota_effective(user=user)

    def limit(name: str) -> int:
        value = quota[name]
        return limits.UNLIMITED if value is None else int(value)

    return Principal(
        user_id=user.pk, username=user.get_username(), key_id=key.pk if key else None,
        prefix=key.prefix if key else "", scopes=frozenset(key.scopes) if key and key.scopes else None,
        allowed=frozenset(quota["allowed_models"]) if quota["allowed_models"] else None,
        limits=limits.Limits(limit("requests_per_minute"), limit("tokens_per_day"), limit("concurrent_requests")),
        expires_at=key.expires_at.timestamp() if key and key.expires_at else None, generation=generation)


def principal_for_key(*, raw: str) -> Principal:
    """The key's caller, read from the database (never from a cache: see accounts.revocation).

    Raises AuthenticationFailed saying why the key is refused."""
    generation = _generation()  # read before the rows, so a change in between is seen as stale
    key = account_services.api_key_authenticate(raw=raw)
    return _principal(key.owner, key=key, generation=generation)


def _generation() -> str:
    # Unknown (Redis down) matches no live generation: the quota script then asks for a reload.
    return revocation.generation_get() or ""


def principal_for_session(*, session_key: str) -> Principal | None:
    """The portal's own pages (chat) call the gateway with the login session instead of a key."""
    from importlib import import_module

    generation = _generation()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = get_user(SimpleNamespace(session=store))
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return _principal(user, generation=generation)



def conversation_list(*, user):
    from gateway.models import Conversation

    return Conversation.objects.filter(user=user)


def conversation_get(*, user, conversation_id: int):
    """Someone else's conversation is a 404, never a 403."""
    from django.http import Http404

    from gateway.models import Conversation

    conversation = Conversation.objects.filter(pk=conversation_id, user=user).first()
    if conversation is None:
        raise Http404("No such conversation among yours.")
    return conversation


def chat_models(*, user) -> list[str]:
    """Models the user may chat with now or load on demand (what the chat page offers)."""
    allowed = account_services.quota_effective(user=user)["allowed_models"]
    names = set()
    for name, entry in routing_snapshot().items():
        if (entry.ready or entry.starting or entry.loadable) and entry.task in ("chat", "code") and (
                not allowed or name in allowed):
            names.add(name)
    return sorted(names)


# -- the Cost view -------------------------------------------------------------------------------

@dataclass
class UserMonthCost:
    month: datetime
    username: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    costs: list  # Decimal per price, in the order of CostReport.prices


@dataclass
class MonthElectricity:
    month: datetime
    energy: cost.Energy
    cost: Decimal


@dataclass
class CostReport:
    prices: list
    settings: object
    everyone: bool
    rows: list[UserMonthCost]
    electricity: list[MonthElectricity]
    api_totals: list  # Decimal per price over the whole window
    electricity_total: Decimal
    days: float
    break_even: list  # (price, cost.BreakEven) per price; empty unless everyone


def month_starts(now: datetime, months: int) -> list[datetime]:
    """The first instants of the last `months` calendar months (current time zone), newest first."""
    from datetime import timedelta

    from django.utils import timezone

    first = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = [first]
    while len(starts) < months:
        starts.append((starts[-1] - timedelta(days=1)).replace(day=1))
    return starts


def node_energy(*, node, start: datetime, end: datetime, busy: list[tuple[float, float]], load_w: float,
                idle_w: float) -> cost.Energy:
    """The energy of one node over [start, end), from its GPU samples and the fallback wattages."""
    from datetime import timedelta

    from nodes.models import NodeSample

    start = max(start, node.created_at)
    if end <= start:
        return cost.Energy()
    gap = settings.PORTAL_COST_SAMPLE_MAX_GAP_S
    # One sample on each side of the window lets its edges be integrated.
    rows = NodeSample.objects.filter(node=node, at__gte=start - timedelta(seconds=gap),
                                     at__lte=end + timedelta(seconds=gap)).order_by("at").values_list("at", "gpus")
    samples = [cost.sample_of(at.timestamp(), gpus) for at, gpus in rows.iterator()]
    return cost.energy(samples, start=start.timestamp(), end=end.timestamp(), busy=busy, load_w=load_w,
                       idle_w=idle_w, max_gap_s=gap)


def node_busy(*, node, start: datetime, end: datetime) -> list[tuple[float, float]]:
    """The merged spans during which gateway requests ran on the node's servers."""
    from datetime import timedelta

    from accounts.models import UsageRecord
    from servers.models import Server

    longest = timedelta(seconds=settings.PORTAL_GATEWAY_REQUEST_TIMEOUT_S)
    on_node = Server.objects.filter(node=node).values("pk")
    rows = UsageRecord.objects.filter(server_id__in=on_node, created_at__gte=start - longest, created_at__lt=end) \
        .values_list("created_at", "duration_ms")
    return cost.merge((at.timestamp(), at.timestamp() + ms / 1000) for at, ms in rows.iterator())


def cost_report(*, user: User, months: int = 3, now: datetime | None = None) -> CostReport:
    """The ledger priced on each paid API per user and month (everyone's for an admin, else the
    user's own), the nodes' electricity per month, and (admins) the break-even of the hardware."""
    from django.db.models import Count, Min, Sum
    from django.db.models.functions import TruncMonth
    from django.utils import timezone

    from accounts.models import UsageRecord
    from gateway import services
    from gateway.models import ApiPrice
    from nodes.models import Node

    now = now or timezone.now()
    cost_settings = services.cost_settings_ensure()
    prices = list(ApiPrice.objects.all())
    starts = month_starts(now, months)
    window_start = starts[-1]
    everyone = user.is_portal_admin
    records = UsageRecord.objects.filter(created_at__gte=window_start, created_at__lte=now)
    if not everyone:
        records = records.filter(user=user)
    grouped = (records.annotate(month=TruncMonth("created_at")).values("month", "username")
               .annotate(requests=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
               .order_by("-month", "username"))
    rows, api_totals = [], [Decimal(0)] * len(prices)
    for g in grouped:
        costs = [cost.api_cost(prompt_tokens=g["prompt"] or 0, completion_tokens=g["completion"] or 0,
                               input_per_million=p.input_per_million, output_per_million=p.output_per_million)
                 for p in prices]
        api_totals = [a + c for a, c in zip(api_totals, costs, strict=True)]
        rows.append(UserMonthCost(g["month"], g["username"], g["requests"], g["prompt"] or 0, g["completion"] or 0,
                                  costs))

    nodes = list(Node.objects.all())
    busy = {node.pk: node_busy(node=node, start=window_start, end=now) for node in nodes}
    electricity = []
    for i, month in enumerate(starts):
        end = starts[i - 1] if i else now
        used = sum((node_energy(node=node, start=month, end=end, busy=busy[node.pk],
                                load_w=cost_settings.load_watts, idle_w=cost_settings.idle_watts)
                    for node in nodes), cost.Energy())
        electricity.append(MonthElectricity(month, used, cost.electricity_cost(
            kwh=used.kwh, per_kwh=cost_settings.electricity_per_kwh)))
    electricity_total = sum((m.cost for m in electricity), Decimal(0))

    # The rates run from when there was anything to count: the first request or the first node.
    firsts = [t for t in (records.aggregate(first=Min("created_at"))["first"],
                          min((n.created_at for n in nodes), default=None)) if t is not None]
    since = max(window_start, min(firsts)) if firsts else window_start
    days = max((now - since).total_seconds() / 86400, 1 / 24)
    break_even = [(p, cost.break_even(api_total=total, electricity_total=electricity_total, days=days,
                                      hardware_cost=cost_settings.hardware_cost))
                  for p, total in zip(prices, api_totals, strict=True)] if everyone else []
    return CostReport(prices, cost_settings, everyone, rows, electricity, api_totals, electricity_total, days,
                      break_even)


def api_price_get(*, price_id: int):
    from django.shortcuts import get_object_or_404

    from gateway.models import ApiPrice

    return get_object_or_404(ApiPrice, pk=price_id)
