"""Writes of usage and cost: the ledger's batches, API prices and the cost settings."""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import services as account_services
from accounts.models import User
from gateway.models import ApiPrice, CostSettings, UsageRecord
from sparkportal.exceptions import ValidationFailed

log = logging.getLogger(__name__)


def usage_record_bulk(*, rows: list[dict]) -> int:
    """Append gateway requests to the ledger (one INSERT per batch) and mark the keys as used.

    Each row holds UsageRecord field values (user_id, api_key_id, server_id, ...). Called from the
    gateway's background writer, never on a request's path.
    """
    if not rows:
        return 0
    last_use: dict[int, datetime] = {}
    for row in rows:
        key_id = row.get("api_key_id")
        if key_id is not None and (key_id not in last_use or row["created_at"] > last_use[key_id]):
            last_use[key_id] = row["created_at"]
    with transaction.atomic():
        UsageRecord.objects.bulk_create([UsageRecord(**row) for row in rows], batch_size=500)
        account_services.api_keys_mark_used(last_use=last_use)
    return len(rows)


def cost_settings_ensure() -> CostSettings:
    """The Cost view's settings row; created on first use with the field notes' defaults, together
    with their price table (so an admin who deletes every price does not get them back)."""
    from gateway.models import ApiPrice, CostSettings
    from gateway.usage import cost

    with transaction.atomic():
        settings_row, created = CostSettings.objects.get_or_create(pk=1)
        if created and not ApiPrice.objects.exists():
            ApiPrice.objects.bulk_create([ApiPrice(name=name, input_per_million=inp, output_per_million=out,
                                                   cached_input_per_million=cached)
                                          for name, inp, out, cached in cost.DEFAULT_PRICES])
    return settings_row


def _price_state(price: ApiPrice) -> dict:
    cached = price.cached_input_per_million
    return {"name": price.name, "input_per_million": str(price.input_per_million),
            "output_per_million": str(price.output_per_million),
            "cached_input_per_million": str(cached) if cached is not None else None}


@transaction.atomic
def api_price_save(*, actor: User, price: ApiPrice | None = None, name: str, input_per_million: Decimal,
                   output_per_million: Decimal, cached_input_per_million: Decimal | None = None,
                   ip: str | None = None) -> ApiPrice:
    """Create a price row (price=None) or change one; admins only, audited."""
    from django.core.exceptions import ValidationError

    from accounts.selectors import require_admin
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
    price.cached_input_per_million = cached_input_per_million
    try:
        price.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(_validation_text(exc, {"name": "Name", "input_per_million": "Input price",
                                                      "output_per_million": "Output price",
                                                      "cached_input_per_million": "Cached input price"})) from None
    price.save()
    new = _price_state(price)
    if new != old:
        action = "gateway.api_price.created" if old is None else "gateway.api_price.changed"
        account_services.audit_record(actor=actor, action=action, target=price, ip=ip,
                                      details={"old": old, "new": new})
    return price


@transaction.atomic
def api_price_delete(*, actor: User, price: ApiPrice, ip: str | None = None) -> None:
    from accounts.selectors import require_admin

    require_admin(actor)
    account_services.audit_record(actor=actor, action="gateway.api_price.deleted", target=price, ip=ip,
                                  details={"old": _price_state(price)})
    price.delete()


@transaction.atomic
def cost_settings_set(*, actor: User, electricity_per_kwh: Decimal, hardware_cost: Decimal, load_watts: int,
                      idle_watts: int, ip: str | None = None) -> CostSettings:
    """Change the price per kWh, the hardware cost and the fallback wattages; admins only, audited."""
    from django.core.exceptions import ValidationError

    from accounts.selectors import require_admin
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
        account_services.audit_record(actor=actor, action="gateway.cost_settings.changed", target=row, ip=ip,
                                      details={"old": old, "new": new})
    return row


def _validation_text(exc: ValidationError, labels: dict[str, str]) -> str:
    parts = []
    for field, messages in exc.message_dict.items():
        label = labels.get(field)
        parts.append(f"{label}: {' '.join(messages)}" if label else " ".join(messages))
    return " ".join(parts)
