import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import client_ip
from accounts.teams import selectors as team_selectors
from gateway import content_log, selectors, services
from gateway import getting_started as getting_started_steps
from sparkportal.exceptions import ApplicationError


@login_required
def chat(request, conversation_id: int | None = None):
    conversation = (selectors.conversation_get(user=request.user, conversation_id=conversation_id)
                    if conversation_id is not None else None)
    history = list(conversation.messages.values("role", "content")) if conversation else []
    return render(request, "gateway/chat.html", {
        "conversation": conversation, "conversations": selectors.conversation_list(user=request.user)[:50],
        "models": selectors.chat_models(user=request.user), "history": history,
        "content_logging": content_log.enabled(), "teams": list(team_selectors.team_choices(user=request.user))})


@login_required
def conversations_manage(request):
    """Admins: every user's conversations by owner, size and dates, to delete; never their titles or text."""
    return render(request, "gateway/conversations_manage.html", {
        "conversations": selectors.conversations_for_admin(user=request.user)})


@login_required
@require_POST
def conversation_delete_as_admin(request, conversation_id: int):
    owner = services.conversation_delete_as_admin(actor=request.user, conversation_id=conversation_id,
                                                  ip=client_ip(request))
    messages.success(request, f"Deleted a conversation of {owner}.")
    return redirect("gateway-conversations-manage")


def _json(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        data = None
    return data if isinstance(data, dict) else {}


@login_required
@require_POST
def conversation_create(request):
    data = _json(request)
    try:
        conversation = services.conversation_create(user=request.user, model=str(data.get("model", "")),
                                                    system_prompt=str(data.get("system_prompt", "")))
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, "code": exc.code}, status=exc.status)
    return JsonResponse({"id": conversation.pk, "url": f"/chat/{conversation.pk}/"}, status=201)


@login_required
@require_POST
def message_add(request, conversation_id: int):
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    data = _json(request)
    try:
        message = services.chat_message_add(conversation=conversation, role=str(data.get("role", "")),
                                            content=str(data.get("content", "")))
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, "code": exc.code}, status=exc.status)
    return JsonResponse({"id": message.pk}, status=201)


@login_required
@require_POST
def conversation_delete(request, conversation_id: int):
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    services.conversation_delete(conversation=conversation)
    return JsonResponse({"deleted": conversation_id})


@login_required
def getting_started(request):
    """The dashboard's checklist fragment (the dashboard lives in nodes, which cannot read these apps)."""
    steps = getting_started_steps.checklist(user=request.user)
    rows = [{"step": step, "can": getting_started_steps.allowed(request.user, step.action)} for step in steps]
    return render(request, "gateway/_getting_started.html", {
        "rows": rows, "all_done": getting_started_steps.checklist_done(steps),
        "next_key": next((step.key for step in steps if not step.done), "")})
