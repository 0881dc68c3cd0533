from datetime import date

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import ApiKey, AuditEvent, User


def api_key_list_visible(*, user: User, everyone: bool = False) -> QuerySet[ApiKey]:
    """Your own keys; an admin asking for everyone's sees all."""
    qs = ApiKey.objects.select_related("owner", "team").order_by("revoked_at", "-created_at")
    if everyone and user.is_portal_admin:
        return qs
    return qs.filter(owner=user)


def api_key_get_visible(*, user: User, key_id: int) -> ApiKey:
    key = ApiKey.objects.select_related("owner").filter(pk=key_id).first()
    if key is None or (key.owner_id != user.pk and not user.is_portal_admin):
        raise Http404("No such API key among yours.")
    return key


def require_admin(user: User) -> None:
    if not getattr(user, "is_authenticated", False) or not user.is_portal_admin:
        raise PermissionDenied("Only admins may do this: ask an admin of the portal.")


def require_operator(user: User) -> None:
    if not getattr(user, "is_authenticated", False) or not user.is_operator:
        raise PermissionDenied("Only operators and admins may do this: ask an admin for the operator role.")


def audit_event_list(*, user: User, actor: str = "", action: str = "", day_from: date | None = None,
                     day_to: date | None = None) -> QuerySet[AuditEvent]:
    require_admin(user)
    qs = AuditEvent.objects.all()
    if actor:
        qs = qs.filter(actor_name__icontains=actor)
    if action:
        qs = qs.filter(action__icontains=action)
    if day_from:
        qs = qs.filter(created_at__date__gte=day_from)
    if day_to:
        qs = qs.filter(created_at__date__lte=day_to)
    return qs
