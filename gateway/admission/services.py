"""Writes of the fair queue's settings: users' weights (admins) and servers' caps (operators); audited."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models, transaction

from accounts.models import User
from accounts.selectors import require_admin, require_operator
from accounts.services import audit_record
from gateway.models import QueueWeight, ServerCapacity
from models_registry.models import ModelProfile
from servers.models import Server
from sparkportal.exceptions import ValidationFailed


@transaction.atomic
def queue_weight_set(*, actor: User, user: User, weight: int, ip: str | None = None) -> QueueWeight:
    """A user's share of a saturated model (1 to 100); the next request of theirs in any process uses it."""
    require_admin(actor)
    row = QueueWeight.objects.select_for_update().filter(user=user).first() or QueueWeight(user=user)
    old = row.weight if row.pk else 1
    row.weight = weight
    _clean(row)
    row.save()  # the save bumps the auth generation: gateway.apps
    if old != weight:
        audit_record(actor=actor, action="gateway.queue_weight.changed", target=user, ip=ip,
                     details={"user": user.get_username(), "old": old, "new": weight})
    return row


@transaction.atomic
def server_capacity_set(*, actor: User, server: Server | None = None, profile: ModelProfile | None = None,
                        max_in_flight: int | None, ip: str | None = None) -> ServerCapacity | None:
    """Cap the requests in flight of one server or of every server of a profile; None removes the cap."""
    require_operator(actor)
    if (server is None) == (profile is None):
        raise ValidationFailed("Cap either one server or one profile, not both and not neither.")
    lookup = {"server": server} if server is not None else {"profile": profile}
    row = ServerCapacity.objects.select_for_update().filter(**lookup).first()
    old = row.max_in_flight if row is not None else None
    if max_in_flight is None:
        if row is not None:
            row.delete()
        row = None
    else:
        row = row or ServerCapacity(**lookup)
        row.max_in_flight = max_in_flight
        _clean(row)
        row.save()
    if old != max_in_flight:
        audit_record(actor=actor, action="gateway.server_capacity.changed", target=server or profile, ip=ip,
                     details={"old": old, "new": max_in_flight})
    return row


def _clean(row: models.Model) -> None:
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(" ".join(m for msgs in exc.message_dict.values() for m in msgs)) from None
