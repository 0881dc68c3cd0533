"""How a revoked key stops working: one generation counter, short-lived caches, reloads from the database.

Who may call what (a key's scopes, expiry and revocation; its owner's active flag and role; the
owner's quota) lives in the database. Reading it on every request would cost more than the request,
so each process caches it: the gateway its principals (gateway.app), the REST API its keys
(accounts.services.api_key_authenticate). One mechanism keeps every such cache honest:

1. Any change bumps one counter in Redis, the auth generation (`GENERATION_KEY`), after its
   transaction commits. A save or delete of an ApiKey, User, Quota, Team or TeamMembership row bumps it through the
   receivers below, so Django admin, the shell and any `Model.save()` count without knowing about
   it. A queryset `update()` sends no signal: services that use one (`api_key_revoke`,
   `user_role_set`) call `generation_bump_on_commit()` themselves; other code changes these rows
   through those services.
2. Each cached entry remembers the generation it was loaded under, read *before* its rows, so a
   change committed in between leaves the entry already stale.
3. Before an entry is used, the live generation is compared with it: the gateway does it inside its
   quota script (no extra round trip, see accounts.limits), the REST API with one GET. When they
   differ the entry is dropped and reloaded from the database, never from another cache.
4. An entry also dies `PORTAL_AUTH_CACHE_TTL_S` seconds (a few) after it was loaded, whatever the
   counter says. A bump lost with Redis (down at commit, flushed, restarted empty) therefore keeps a
   revoked or narrowed key alive for at most that long; the price is one query per key per TTL.
"""
from __future__ import annotations

import logging
import time
from typing import Generic, TypeVar

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.limits import AUTH_GEN_KEY, sync_redis
from accounts.models import ApiKey, Quota, User
from accounts.teams.models import Team, TeamMembership

log = logging.getLogger(__name__)

GENERATION_KEY = AUTH_GEN_KEY
# Saves that touch only these fields change nobody's rights (logins, the once-a-minute key touch).
_HARMLESS_FIELDS = frozenset({"last_login", "last_used_at"})

T = TypeVar("T")


def generation_get() -> str | None:
    """The live generation, or None when Redis cannot say (then no cached entry may be trusted)."""
    try:
        value = sync_redis().get(GENERATION_KEY)
    except redis.RedisError:
        log.warning("auth generation unreadable; keys are read from the database meanwhile")
        return None
    return value.decode() if value is not None else "0"


def generation_bump() -> None:
    """Make every process drop its cached principals on its next request."""
    try:
        sync_redis().incr(GENERATION_KEY)
    except redis.RedisError:
        # The change is committed; caches notice it when their entries expire.
        log.warning("could not bump the auth generation; cached keys expire within %s s",
                    settings.PORTAL_AUTH_CACHE_TTL_S, exc_info=True)


def generation_bump_on_commit() -> None:
    """Bump once the current transaction commits (at once outside one): never before the rows are visible."""
    transaction.on_commit(generation_bump)


class PrincipalCache(Generic[T]):
    """Entries by key digest, each good while its generation is current and for `ttl` seconds at most.

    Not locked: single dict operations are atomic, and a lost race only costs one extra reload.
    """

    def __init__(self, *, ttl: float | None = None, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[T, str, float]] = {}

    @property
    def ttl(self) -> float:
        return settings.PORTAL_AUTH_CACHE_TTL_S if self._ttl is None else self._ttl

    def get(self, digest: str, *, generation: str | None = None) -> T | None:
        """The entry if younger than the TTL and, when `generation` is given, loaded under it."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        value, loaded_under, loaded_at = entry
        if time.monotonic() - loaded_at >= self.ttl or (generation is not None and generation != loaded_under):
            self._entries.pop(digest, None)
            return None
        return value

    def put(self, digest: str, value: T, *, generation: str) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare: a flood of distinct keys; dropping all is cheaper than an LRU
        self._entries[digest] = (value, generation, time.monotonic())

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _row_changed(sender, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    # A new key or user is in no cache yet; a new quota, team or membership may narrow a cached caller.
    if created and sender in (ApiKey, User):
        return
    if update_fields and set(update_fields) <= _HARMLESS_FIELDS:
        return
    generation_bump_on_commit()


def receivers_connect() -> None:
    """Called from AccountsConfig.ready: every save or delete of a row that grants access bumps."""
    for model in (ApiKey, User, Quota, Team, TeamMembership):
        post_save.connect(_row_changed, sender=model, dispatch_uid=f"auth-gen-save-{model.__name__}")
        post_delete.connect(_row_changed, sender=model, dispatch_uid=f"auth-gen-delete-{model.__name__}")
