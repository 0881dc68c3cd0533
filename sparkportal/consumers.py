"""`ws/events/`: the one websocket. It joins the user to the groups they may see and forwards."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from sparkportal import events

CLOSE_UNAUTHENTICATED = 4401


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        user = self.scope.get("user")
        if not getattr(user, "is_authenticated", False):
            # Accept first: a close before accept becomes an HTTP 403 and the code is lost.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        await self._join(events.user_group(user.pk))
        query = parse_qs(self.scope.get("query_string", b"").decode())
        for group in ",".join(query.get("groups", [])).split(","):
            if group:
                await self._join(group)

    async def disconnect(self, code: int) -> None:
        for group in list(getattr(self, "groups_joined", ())):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        group = content.get("group", "") if isinstance(content, dict) else ""
        if action == "subscribe" and isinstance(group, str):
            await self._join(group)
        elif action == "unsubscribe" and group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)
        else:
            await self.send_json({"event": "error", "data": {
                "message": 'Send {"action": "subscribe"|"unsubscribe", "group": "<name>"}.'}})

    async def _join(self, group: str) -> None:
        allowed = await database_sync_to_async(events.may_join)(self.scope["user"], group)
        if not allowed:
            await self.send_json({"event": "subscribe.refused", "data": {
                "group": group, "message": f"You may not follow {group!r}."}})
            return
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.add(group)
        await self.send_json({"event": "subscribe.ok", "data": {"group": group}})

    async def session_ended(self, message: dict) -> None:
        """The user logged out of the session this socket was opened with."""
        session = self.scope.get("session")
        if session is not None and message.get("session_key") == session.session_key:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def auth_changed(self, message: dict) -> None:
        """The user's role or status changed: keep only the groups the user may still follow."""
        user = await database_sync_to_async(_user_reload)(self.scope["user"].pk)
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.scope["user"] = user
        for group in sorted(self.groups_joined):
            if await database_sync_to_async(events.may_join)(user, group):
                continue
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)
            await self.send_json({"event": "subscribe.revoked", "data": {
                "group": group, "message": f"You may no longer follow {group!r}: your role changed."}})

    async def event_forward(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "data": message["data"]})


def _user_reload(user_id: int):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=user_id, is_active=True).first()
