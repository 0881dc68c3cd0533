"""The per-node Hugging Face token: set or cleared by an admin, used by the node's worker, never shown again."""
from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.selectors import require_admin
from accounts.services import audit_record
from models_registry.models import NodeHubToken
from sparkportal.exceptions import ValidationFailed


@transaction.atomic
def hub_token_set(*, node, token: str, actor: User, ip: str | None = None) -> NodeHubToken:
    require_admin(actor)
    token = (token or "").strip()
    if not token or any(c.isspace() for c in token) or len(token) > 500:
        raise ValidationFailed("Paste the Hugging Face access token as one word (it starts with hf_); "
                               "create one at huggingface.co/settings/tokens with read access.")
    row, created = NodeHubToken.objects.update_or_create(node=node, defaults={"token": token, "set_by": actor})
    # The audit row says that it changed, never what it is.
    audit_record(actor=actor, action="models.hubtoken.set", target=node, ip=ip,
                 details={"node": node.name, "replaced": not created})
    return row


@transaction.atomic
def hub_token_clear(*, node, actor: User, ip: str | None = None) -> bool:
    require_admin(actor)
    deleted, _ = NodeHubToken.objects.filter(node=node).delete()
    if deleted:
        audit_record(actor=actor, action="models.hubtoken.cleared", target=node, ip=ip, details={"node": node.name})
    return bool(deleted)
