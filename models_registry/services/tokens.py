"""The per-node Hugging Face token: set or cleared by an admin, sealed at rest, used by the node's worker,
never shown again."""
from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.selectors import require_admin
from accounts.services import audit_record
from models_registry.clients import HubError
from models_registry.models import NodeHubToken
from nodes.models import Node
from sparkportal.exceptions import ValidationFailed
from sparkportal.lib import sealed


@transaction.atomic
def hub_token_set(*, node: Node, token: str, actor: User, ip: str | None = None) -> NodeHubToken:
    require_admin(actor)
    token = (token or "").strip()
    if not token or any(c.isspace() for c in token) or len(token) > 500:
        raise ValidationFailed("Paste the Hugging Face access token as one word (it starts with hf_); "
                               "create one at huggingface.co/settings/tokens with read access.")
    row, created = NodeHubToken.objects.update_or_create(node=node, defaults={"sealed": sealed.seal(token),
                                                                              "set_by": actor})
    # The audit row says that it changed, never what it is.
    audit_record(actor=actor, action="models.hubtoken.set", target=node, ip=ip,
                 details={"node": node.name, "replaced": not created})
    return row


@transaction.atomic
def hub_token_clear(*, node: Node, actor: User, ip: str | None = None) -> bool:
    require_admin(actor)
    deleted, _ = NodeHubToken.objects.filter(node=node).delete()
    if deleted:
        audit_record(actor=actor, action="models.hubtoken.cleared", target=node, ip=ip, details={"node": node.name})
    return bool(deleted)


def hub_token_reveal(*, node: Node) -> str | None:
    """The node's token in clear, for its own hub calls only; None when none is set.

    Raises HubError("token_unreadable") when it was sealed with another key, with the fix.
    """
    if node is None:
        return None
    value = NodeHubToken.objects.filter(node=node).values_list("sealed", flat=True).first()
    if value is None:
        return None
    try:
        return sealed.unseal(value)
    except sealed.Unreadable as exc:
        raise HubError("token_unreadable", (
            f"The Hugging Face token of node {node.name} cannot be decrypted with this host's key: it was saved "
            "under another SECRET_KEY / PORTAL_SECRETS_KEY. Give every host the same PORTAL_SECRETS_KEY, or set "
            "the token again (Models → Weights on disk).")) from exc
