"""Reads of usage and cost: the ledger per user, day, model and key, and what it would have cost elsewhere."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import User
from accounts.selectors import require_admin
from accounts.teams.models import Team
from gateway.models import ApiPrice, UsageRecord
from gateway.usage import cost
from nodes.models import Node


def usage_records(*, user: User, everyone: bool = False, days: int = 30, team: Team | None = None) -> QuerySet:
    """Ledger rows of the last `days` days: the user's own, everyone's for an admin who asks, or those
    charged to a team the user administers (team_get_managed has checked that), whoever sent them."""
    from datetime import timedelta

    from django.utils import timezone

    qs = UsageRecord.objects.filter(created_at__gte=timezone.now() - timedelta(days=days))
    if team is not None:
        return qs.filter(team=team)
    if everyone:
        require_admin(user)
        return qs
    return qs.filter(user=user)


def usage_summary(*, records: QuerySet) -> dict:
    """Totals per day, per model, per key and per user, plus the latest errors."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    sums = {"requests": Count("id"), "prompt": Sum("prompt_tokens"), "cached": Sum("cached_tokens"),
            "completion": Sum("completion_tokens")}
    return {
        "per_day": list(records.annotate(day=TruncDate("created_at")).values("day").annotate(**sums).order_by("-day")),
        "per_model": list(records.values("model").annotate(**sums).order_by("-requests")),
        "per_key": list(records.values("key_prefix").annotate(**sums).order_by("-requests")),
        "per_user": list(records.values("username").annotate(**sums).order_by("-completion", "-requests")[:20]),
        "per_team": list(records.values("team__name").annotate(**sums).order_by("-completion", "-requests")),
        "errors": list(records.filter(status__gte=400).order_by("-created_at")[:50]),
        "totals": records.aggregate(**sums),
    }


@dataclass
class UserMonthCost:
    month: datetime
    username: str  # or the team's name when the report is grouped by team
    requests: int
    prompt_tokens: int
    cached_tokens: int
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
    by_team: bool
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


def node_energy(*, node: Node, start: datetime, end: datetime, busy: list[tuple[float, float]], load_w: float,
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


def node_busy(*, node: Node, start: datetime, end: datetime) -> list[tuple[float, float]]:
    """The merged spans during which gateway requests ran on the node's servers."""
    from datetime import timedelta

    from servers.models import Server

    longest = timedelta(seconds=settings.PORTAL_GATEWAY_REQUEST_TIMEOUT_S)
    on_node = Server.objects.filter(node=node).values("pk")
    rows = UsageRecord.objects.filter(server_id__in=on_node, created_at__gte=start - longest, created_at__lt=end) \
        .values_list("created_at", "duration_ms")
    return cost.merge((at.timestamp(), at.timestamp() + ms / 1000) for at, ms in rows.iterator())


def cost_report(*, user: User, months: int = 3, now: datetime | None = None, by_team: bool = False) -> CostReport:
    """The ledger priced on each paid API per user (or per charged team) and month (everyone's for an
    admin, else the user's own), the nodes' electricity per month, and (admins) the break-even of the
    hardware."""
    from django.db.models import Count, Min, Sum
    from django.db.models.functions import TruncMonth
    from django.utils import timezone

    from gateway.models import ApiPrice
    from gateway.usage import services
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
    who = "team__name" if by_team else "username"
    grouped = (records.annotate(month=TruncMonth("created_at")).values("month", who)
               .annotate(requests=Count("id"), prompt=Sum("prompt_tokens"), cached=Sum("cached_tokens"),
                         completion=Sum("completion_tokens"))
               .order_by("-month", who))
    rows, api_totals = [], [Decimal(0)] * len(prices)
    for g in grouped:
        costs = [cost.api_cost(prompt_tokens=g["prompt"] or 0, completion_tokens=g["completion"] or 0,
                               cached_tokens=g["cached"] or 0, input_per_million=p.input_per_million,
                               output_per_million=p.output_per_million,
                               cached_input_per_million=p.cached_input_per_million)
                 for p in prices]
        api_totals = [a + c for a, c in zip(api_totals, costs, strict=True)]
        rows.append(UserMonthCost(g["month"], g[who] or "", g["requests"], g["prompt"] or 0, g["cached"] or 0,
                                  g["completion"] or 0, costs))

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
    return CostReport(prices, cost_settings, everyone, by_team, rows, electricity, api_totals, electricity_total, days,
                      break_even)


def api_price_get(*, price_id: int) -> ApiPrice:
    from django.shortcuts import get_object_or_404

    from gateway.models import ApiPrice

    return get_object_or_404(ApiPrice, pk=price_id)
