import json

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from gateway import getting_started as getting_started_steps
from gateway import selectors, services
from sparkportal.exceptions import ApplicationError


@login_required
def chat(request, conversation_id: int | None = None):
    conversation = (selectors.conversation_get(user=request.user, conversation_id=conversation_id)
                    if conversation_id is not None else None)
    messages = list(conversation.messages.values("role", "content")) if conversation else []
    return render(request, "gateway/chat.html", {
        "conversation": conversation, "conversations": selectors.conversation_list(user=request.user)[:50],
        "models": selectors.chat_models(user=request.user), "history": messages})


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
