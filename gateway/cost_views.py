from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import client_ip
from gateway import forms, selectors, services
from sparkportal.exceptions import ApplicationError


def _months(request) -> int:
    try:
        return max(1, min(24, int(request.GET.get("months", 3))))
    except ValueError:
        return 3


@login_required
def cost(request, *, error: str = "", status: int = 200):
    report = selectors.cost_report(user=request.user, months=_months(request))
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
