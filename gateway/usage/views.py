"""Pages of usage (mine, the team's, CSV) and cost (what the ledger would cost on paid APIs, electricity)."""
import logging

import redis
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import limits
from accounts.services import client_ip
from accounts.teams import selectors as team_selectors
from gateway import content_log
from gateway.usage import forms, selectors, services
from sparkportal.exceptions import ApplicationError
from sparkportal.lib.csvsafe import SafeWriter

log = logging.getLogger(__name__)

CSV_FIELDS = ["created_at", "username", "key_prefix", "team_name", "model", "endpoint", "stream", "status",
              "error_code", "prompt_tokens", "cached_tokens", "completion_tokens", "ttft_ms", "duration_ms",
              "client_ip"]


def _days(request) -> int:
    try:
        return max(1, min(366, int(request.GET.get("days", 30))))
    except ValueError:
        return 30


@login_required
def usage_mine(request):
    days = _days(request)
    summary = selectors.usage_summary(records=selectors.usage_records(user=request.user, days=days))
    return render(request, "gateway/usage.html", {"summary": summary, "team": False, "days": days,
                                                   "tokens_today": _tokens_today(request.user.pk),
                                                   "content_logging": content_log.enabled()})


def _tokens_today(user_id: int) -> int | None:
    """None while the quota counters (Redis) are unreachable: the ledger figures still show."""
    try:
        return limits.tokens_used_today(user_id)
    except redis.RedisError:
        log.warning("today's token count of user %s is unreadable", user_id, exc_info=True)
        return None


@login_required
def usage_team(request):
    days = _days(request)
    summary = selectors.usage_summary(records=selectors.usage_records(user=request.user, everyone=True, days=days))
    return render(request, "gateway/usage.html", {"summary": summary, "team": True, "days": days,
                                                   "content_logging": content_log.enabled()})


def _team_managed(request, team_id: int):
    try:
        return team_selectors.team_get_managed(user=request.user, team_id=team_id)
    except ApplicationError as exc:
        raise PermissionDenied(exc.message) from None


@login_required
def usage_of_team(request, team_id: int):
    """One team's usage from the ledger: its admins and portal admins only (members see totals on the team page)."""
    team = _team_managed(request, team_id)
    days = _days(request)
    summary = selectors.usage_summary(records=selectors.usage_records(user=request.user, team=team, days=days))
    return render(request, "gateway/usage.html", {"summary": summary, "team": True, "of_team": team, "days": days,
                                                   "month": team_selectors.team_usage_month(team=team),
                                                   "content_logging": content_log.enabled()})


@login_required
def usage_export(request):
    everyone = request.GET.get("scope") == "team"
    team = None
    if request.GET.get("team", "").isdigit():
        team = _team_managed(request, int(request.GET["team"]))
    records = selectors.usage_records(user=request.user, everyone=everyone, team=team,
                                      days=_days(request)).order_by("created_at")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"team-{team.pk}" if team is not None else ("team" if everyone else "mine")
    response["Content-Disposition"] = f'attachment; filename="usage-{name}.csv"'
    writer = SafeWriter(response)
    writer.writerow(CSV_FIELDS)
    # team_name: the team the request was charged to (empty: none).
    for row in records.annotate(team_name=F("team__name")).values_list(*CSV_FIELDS).iterator():
        writer.writerow(row)
    return response


def _months(request) -> int:
    try:
        return max(1, min(24, int(request.GET.get("months", 3))))
    except ValueError:
        return 3


@login_required
def cost(request, *, error: str = "", status: int = 200):
    report = selectors.cost_report(user=request.user, months=_months(request),
                                   by_team=request.GET.get("by") == "team")
    return render(request, "gateway/cost.html", {"report": report, "error": error, "months": _months(request),
                                                   "month_choices": [1, 3, 6, 12]},
                  status=status)


def _save(request, form_class, save) -> object:
    form = form_class(request.POST)
    if not form.is_valid():
        return cost(request, error=forms.error_text(form), status=400)
    try:
        save(form.cleaned_data)
    except ApplicationError as exc:
        return cost(request, error=exc.message, status=exc.status)
    return redirect("gateway-cost")


@login_required
@require_POST
def price_create(request):
    def save(data):
        price = services.api_price_save(actor=request.user, ip=client_ip(request), **data)
        messages.success(request, f"Price of {price.name} added.")

    return _save(request, forms.ApiPriceForm, save)


@login_required
@require_POST
def price_update(request, price_id: int):
    price = selectors.api_price_get(price_id=price_id)

    def save(data):
        services.api_price_save(actor=request.user, price=price, ip=client_ip(request), **data)
        messages.success(request, f"Price of {data['name']} saved.")

    return _save(request, forms.ApiPriceForm, save)


@login_required
@require_POST
def price_delete(request, price_id: int):
    price = selectors.api_price_get(price_id=price_id)
    services.api_price_delete(actor=request.user, price=price, ip=client_ip(request))
    messages.success(request, f"Price of {price.name} deleted.")
    return redirect("gateway-cost")


@login_required
@require_POST
def cost_settings_save(request):
    def save(data):
        services.cost_settings_set(actor=request.user, ip=client_ip(request), **data)
        messages.success(request, "Cost settings saved.")

    return _save(request, forms.CostSettingsForm, save)
