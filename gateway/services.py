"""Gateway writes: conversations (usage and cost: gateway.usage; servers are started by servers' services)."""
from __future__ import annotations

import logging

from django.db import transaction

from accounts.models import User
from gateway.models import ChatMessage, Conversation
from sparkportal.exceptions import ValidationFailed

log = logging.getLogger(__name__)


@transaction.atomic
def conversation_create(*, user: User, model: str, system_prompt: str = "", title: str = "") -> Conversation:
    from gateway.models import Conversation

    conversation = Conversation(user=user, model=model[:200], system_prompt=system_prompt, title=title[:200])
    conversation.full_clean()
    conversation.save()
    return conversation


@transaction.atomic
def chat_message_add(*, conversation: Conversation, role: str, content: str) -> ChatMessage:
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
def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


@transaction.atomic
def conversation_delete_as_admin(*, actor: User, conversation_id: int, ip: str | None = None) -> str:
    """An admin deletes someone's conversation unread; audited by owner and size only. Returns the owner's name."""
    from django.db.models import Count
    from django.shortcuts import get_object_or_404

    from accounts.selectors import require_admin
    from accounts.services import audit_record

    require_admin(actor)
    conversation = get_object_or_404(Conversation.objects.select_related("user").annotate(n=Count("messages")),
                                     pk=conversation_id)
    owner = conversation.user.get_username()
    audit_record(actor=actor, action="gateway.conversation.deleted", target_type="gateway.conversation",
                 target_id=str(conversation_id), ip=ip, details={"owner": owner, "messages": conversation.n})
    conversation.delete()
    return owner
