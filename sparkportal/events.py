"""The one event helper: publish to a channel-layer group from web code or Celery tasks.

Every event travels as {"type": "event.forward", "event": <dotted type>, "data": {...}} so
the websocket consumer forwards it unchanged; the browser re-dispatches it as a DOM event
named after the dotted type (`server.status` -> `server-status`).

Authorization of groups lives here too: each app registers a function that says whether a
user may join the groups under its prefix (see `register_group`).
"""
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

GroupCheck = Callable[[Any, str], bool]
_group_checks: dict[str, GroupCheck] = {}


def register_group(prefix: str, check: GroupCheck) -> None:
    """Register who may join groups named `<prefix>` or `<prefix>.<anything>`."""
    _group_checks[prefix] = check


def may_join(user, group: str) -> bool:
    """Longest registered prefix decides; unknown groups are refused."""
    if not getattr(user, "is_authenticated", False):
        return False
    best = ""
    for prefix in _group_checks:
        if (group == prefix or group.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return bool(best) and _group_checks[best](user, group)


def message(event_type: str, payload: dict) -> dict:
    return {"type": "event.forward", "event": event_type, "data": payload}


def publish(group: str, event_type: str, payload: dict) -> None:
    """Send one event to a group. Never raises: a live page must not break a task."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message(event_type, payload))
    except Exception:  # noqa: BLE001 - the event bus is best effort by design
        log.warning("could not publish %s to %s", event_type, group, exc_info=True)


def user_group(user_id: int) -> str:
    """Every socket of a user joins this group; it also carries the socket's own control messages."""
    return f"accounts.user.{user_id}"


def socket_control_send(user_id: int, kind: str, **data: Any) -> None:
    """Tell the user's sockets that their authorization changed (handled by the consumer, not forwarded):
    `session.ended` closes the socket of that session, `auth.changed` re-checks every group it follows."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": kind, **data})
    except Exception:  # noqa: BLE001 - a socket left open still loses its groups at the next change
        log.warning("could not tell user %s's sockets about %s", user_id, kind, exc_info=True)


async def apublish(group: str, event_type: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, message(event_type, payload))
    except Exception:  # noqa: BLE001
        log.warning("could not publish %s to %s", event_type, group, exc_info=True)
