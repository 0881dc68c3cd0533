"""Gateway writes: conversations, prices and cost settings. Servers are started and stopped by servers' services."""
from __future__ import annotations

import logging

from django.db import transaction

from sparkportal.exceptions import ValidationFailed

log = logging.getLogger(__name__)


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
