"""Accounts: audit log, API keys, roles, the first admin."""
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts import revocation
from accounts.models import ApiKey, AuditEvent, Quota, User
from accounts.teams.models import Team
from sparkportal.exceptions import AuthenticationFailed, NotFound, PermissionDenied, ValidationFailed
from sparkportal.lib.clientip import request_client_ip

KEY_MARK = "sk-sp-"
PREFIX_RANDOM_CHARS = 8
PREFIX_LEN = len(KEY_MARK) + PREFIX_RANDOM_CHARS
KEY_LEN = len(KEY_MARK) + 40  # secrets.token_urlsafe(30)
KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address for audit rows (see sparkportal.lib.clientip)."""
    return request_client_ip(request) if request is not None else None


def audit_record(*, actor: User | None, action: str, target: models.Model | None = None, target_type: str = "",
                 target_id: str = "", details: dict | None = None, ip: str | None = None,
                 actor_name: str = "") -> AuditEvent:
    """Write one audit row. Services call this for every change made by a person."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_name=actor_name or (actor.get_username() if actor is not None else ""),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip=ip,
    )


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_key_check_within(*, via: ApiKey | None, scopes: list[str] | None, expires_at: datetime | None,
                         what: str = "a key") -> None:
    """A request made with an API key may only make or touch keys no broader and no longer-lived than that
    key: otherwise a key limited to one model, or about to expire, could mint its own unlimited successor.
    The browser session (`via` None) may do anything its user may."""
    if via is None:
        return
    wanted = {s.strip() for s in (scopes or []) if s and s.strip()}
    if via.scopes and (not wanted or not wanted <= set(via.scopes)):
        raise PermissionDenied(
            f"API key {via.display} may only use {', '.join(via.scopes)}, so it may only manage keys limited to "
            f"those models; {what} would reach {', '.join(sorted(wanted - set(via.scopes))) or 'every model'}. "
            "Set scopes within them, or use the Keys page.", code="key_broader_than_caller")
    if via.expires_at is not None and (expires_at is None or expires_at > via.expires_at):
        raise PermissionDenied(
            f"API key {via.display} expires on {via.expires_at:%Y-%m-%d %H:%M} UTC, so it may only manage keys "
            f"that expire by then; {what} would "
            f"{'never expire' if expires_at is None else f'expire on {expires_at:%Y-%m-%d %H:%M} UTC'}. "
            "Set an earlier expiry, or use the Keys page.", code="key_outlives_caller")


def api_key_create(*, owner: User, name: str, actor: User | None = None, scopes: list[str] | None = None,
                   expires_at: datetime | None = None, gateway_only: bool = False,
                   ip: str | None = None, via: ApiKey | None = None, team_id: int | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored and never shown again.

    `gateway_only` keys work on /v1 but not on the REST API (see accounts.auth). `via` is the key the
    request was made with, if any (see api_key_check_within). `team_id` binds the key to one of the
    owner's teams: its requests are charged there (accounts.teams.selectors.team_charged)."""
    api_key_check_within(via=via, scopes=scopes, expires_at=expires_at, what="the new key")
    team = _owner_team(owner=owner, team_id=team_id)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Give the key a name, e.g. the tool or machine that will use it.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry date is in the past: pick a future date or leave it empty.")
    if ApiKey.objects.filter(owner=owner, name=name, revoked_at__isnull=True).exists():
        raise ValidationFailed(f"You already have an active key named {name!r}: choose another name.")
    clean_scopes = sorted({s.strip() for s in (scopes or []) if s and s.strip()})
    for _attempt in range(5):
        raw = KEY_MARK + secrets.token_urlsafe(30)
        key = ApiKey(owner=owner, name=name, prefix=raw[:PREFIX_LEN], hashed_key=hash_key(raw),
                     scopes=clean_scopes, expires_at=expires_at, gateway_only=gateway_only, team=team)
        try:
            with transaction.atomic():
                key.save()
            break
        except IntegrityError:
            continue  # prefix collision: draw again
    else:
        raise RuntimeError("could not draw a unique API key prefix")
    audit_record(actor=actor or owner, action="accounts.apikey.created", target=key, ip=ip,
                 details={"name": name, "owner": owner.get_username(), "prefix": key.prefix,
                          "scopes": clean_scopes, "expires_at": expires_at.isoformat() if expires_at else None,
                          "gateway_only": gateway_only, "team": team.name if team else None})
    return key, raw


def _owner_team(*, owner: User, team_id: int | None) -> Team | None:
    """The owner's team of that id; any other id (another team, none at all) is refused alike."""
    if team_id is None:
        return None
    # Matched in Python: an id too large for the database is simply not one of the owner's teams.
    team = next((t for t in Team.objects.filter(memberships__user=owner) if t.pk == team_id), None)
    if team is None:
        raise ValidationFailed(f"{owner.get_username()} is not a member of team {team_id}: a key can only be "
                               "charged to one of its owner's teams (the Teams page lists them).")
    return team


def api_key_find(*, key_or_prefix: str) -> ApiKey:
    """The full secret or its displayed prefix (a trailing '…' or '...' is ignored)."""
    text = key_or_prefix.strip().rstrip("….").strip()
    if not text.startswith(KEY_MARK):
        raise ValidationFailed(f"{key_or_prefix!r} is not an API key or key prefix: they start with {KEY_MARK!r}.")
    query = Q(hashed_key=hash_key(text)) if len(text) > PREFIX_LEN else Q(prefix=text)
    key = ApiKey.objects.select_related("owner").filter(query).first()
    if key is None:
        raise NotFound(f"No API key matches {key_or_prefix!r}.")
    return key


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None, ip: str | None = None, reason: str = "",
                   via: ApiKey | None = None) -> ApiKey:
    api_key_check_within(via=via, scopes=key.scopes, expires_at=key.expires_at, what=f"key {key.display}")
    updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    if updated:
        revocation.generation_bump_on_commit()  # a queryset update sends no post_save
        details = {"name": key.name, "owner": key.owner.get_username(), "prefix": key.prefix}
        if reason:
            details["reason"] = reason
        audit_record(actor=actor, action="accounts.apikey.revoked", target=key, ip=ip, details=details)
    return key


# The REST API's keys, per process; accounts.revocation says when an entry stops being trusted.
_rest_keys: revocation.PrincipalCache[ApiKey] = revocation.PrincipalCache()


@transaction.atomic
def api_key_update(*, key: ApiKey, actor: User | None, scopes: list[str], expires_at: datetime | None,
                   ip: str | None = None, via: ApiKey | None = None) -> ApiKey:
    """Set a key's scopes and expiry; audited; effective on the next request everywhere.

    An expiry of now or earlier ends the key at once (a softer revoke that keeps its history).
    The row is written with `save()`, so accounts.revocation's receiver bumps the generation.
    """
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is not None:
        raise ValidationFailed(f"API key {key.display} is revoked: create a new key instead of changing it.")
    api_key_check_within(via=via, scopes=key.scopes, expires_at=key.expires_at, what=f"key {key.display}")
    api_key_check_within(via=via, scopes=scopes, expires_at=expires_at, what=f"the changed key {key.display}")
    clean_scopes = sorted({s.strip() for s in scopes if s and s.strip()})
    old = {"scopes": key.scopes, "expires_at": key.expires_at.isoformat() if key.expires_at else None}
    key.scopes, key.expires_at = clean_scopes, expires_at
    new = {"scopes": clean_scopes, "expires_at": expires_at.isoformat() if expires_at else None}
    if new != old:
        key.full_clean()
        key.save(update_fields=["scopes", "expires_at"])
        audit_record(actor=actor, action="accounts.apikey.changed", target=key, ip=ip,
                     details={"name": key.name, "owner": key.owner.get_username(), "prefix": key.prefix,
                              "old": old, "new": new})
    return key


def api_key_authenticate(*, raw: str, cached: bool = False) -> ApiKey:
    """Return the active key for a presented secret or raise AuthenticationFailed saying why.

    With `cached` (the REST API) a key loaded by this process is reused while the auth generation is
    unchanged, for a few seconds at most; without it the row is always read from the database.
    """
    raw = (raw or "").strip()
    problem = _malformed_key_problem(raw)
    if problem:
        raise AuthenticationFailed(f"Malformed API key: {problem}. Create one on the Keys page.",
                                   code="invalid_api_key")
    hashed = hash_key(raw)
    key = _api_key_cached(hashed) if cached else _api_key_load(hashed)
    now = timezone.now()
    if key.revoked_at is not None:
        raise AuthenticationFailed(f"API key {key.display} was revoked: create a new one on the Keys page.",
                                   code="revoked_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationFailed(
            f"API key {key.display} expired on {key.expires_at:%Y-%m-%d %H:%M} UTC: create a new one.",
            code="expired_api_key")
    if not key.owner.is_active:
        raise AuthenticationFailed(f"The owner of API key {key.display} is deactivated.", code="inactive_user")
    _touch(key, now)
    return key


def _malformed_key_problem(raw: str) -> str:
    """What is wrong with a presented key's shape, in words ("" when nothing): never echoes the key."""
    if not raw.startswith(KEY_MARK):
        return f"portal keys start with {KEY_MARK!r} and this one does not"
    if len(raw) <= PREFIX_LEN:
        return (f"it has only {len(raw)} characters where a portal key has {KEY_LEN} ({KEY_MARK!r} and "
                f"{KEY_LEN - len(KEY_MARK)} more); was it cut off when copied?")
    if not KEY_CHARS.fullmatch(raw[len(KEY_MARK):]):
        return "it contains characters no portal key has (spaces, quotes or line breaks picked up when copied?)"
    return ""


def _api_key_cached(hashed: str) -> ApiKey:
    generation = revocation.generation_get()  # read before the row: a change in between leaves it stale
    key = _rest_keys.get(hashed, generation=generation) if generation is not None else None
    if key is None:
        key = _api_key_load(hashed)
        if generation is not None:
            _rest_keys.put(hashed, key, generation=generation)
    return key


def _api_key_load(hashed: str) -> ApiKey:
    key = ApiKey.objects.select_related("owner").filter(hashed_key=hashed).first()
    if key is None:
        raise AuthenticationFailed("Unknown API key: check that it was copied whole, or create a new one.",
                                   code="invalid_api_key")
    return key


def _touch(key: ApiKey, now: datetime) -> None:
    # One write a minute at most: a write per request would serialize hot clients on the row.
    stale = now - timedelta(seconds=settings.PORTAL_API_KEY_TOUCH_SECONDS)
    if key.last_used_at is None or key.last_used_at < stale:
        ApiKey.objects.filter(pk=key.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)).update(
            last_used_at=now)
        key.last_used_at = now


@transaction.atomic
def user_role_set(*, user: User, role: str, actor: User | None, ip: str | None = None) -> User:
    if role not in User.Role.values:
        raise ValidationFailed(f"Unknown role {role!r}: use one of {', '.join(User.Role.values)}.")
    old = User.objects.select_for_update().get(pk=user.pk).role
    if old != role:
        User.objects.filter(pk=user.pk).update(role=role)
        revocation.generation_bump_on_commit()  # role defaults of quotas change with it; no post_save here
        audit_record(actor=actor, action="accounts.user.role_changed", target=user, ip=ip,
                     details={"username": user.get_username(), "old": old, "new": role})
    user.role = role
    return user


def admin_ensure(*, password: str | None) -> tuple[User, str | None]:
    """Create the first admin when no admin exists; returns (user, generated password or None)."""
    existing = User.objects.filter(Q(role=User.Role.ADMIN) | Q(is_superuser=True)).order_by("pk").first()
    if existing is not None:
        return existing, None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    user = User.objects.create_superuser(username="admin", email="", password=password, role=User.Role.ADMIN)
    audit_record(actor=None, actor_name="system", action="accounts.user.created", target=user,
                 details={"username": "admin", "role": "admin", "first_admin": True})
    return user, generated


QUOTA_FIELDS = ("requests_per_minute", "tokens_per_day", "concurrent_requests", "allowed_models")


def quota_effective(*, user: User) -> dict:
    """The limits that apply to a user: their own row per field, else their role's default, else none.

    Returns {"requests_per_minute", "tokens_per_day", "concurrent_requests": int | None (unlimited),
    "allowed_models": list (empty = all)}.
    """
    rows = {(q.user_id is not None): q
            for q in Quota.objects.filter(Q(user=user) | Q(user__isnull=True, role=user.role))}
    own, default = rows.get(True), rows.get(False)
    result = {}
    for field in QUOTA_FIELDS:
        value = getattr(own, field) if own is not None else None
        if value is None or value == []:
            value = getattr(default, field) if default is not None else None
        result[field] = value if value is not None else ([] if field == "allowed_models" else None)
    return result


@transaction.atomic
def quota_set(*, actor: User, user: User | None = None, role: str = "", requests_per_minute: int | None = None,
              tokens_per_day: int | None = None, concurrent_requests: int | None = None,
              allowed_models: list[str] | None = None, ip: str | None = None) -> Quota:
    """Create or change a user's quota or a role's default; audited; effective on the next request."""
    if (user is None) == (not role):
        raise ValidationFailed("Set a quota either for one user or as the default of a role, not both.")
    if role and role not in User.Role.values:
        raise ValidationFailed(f"Unknown role {role!r}: use one of {', '.join(User.Role.values)}.")
    for name, value in (("requests per minute", requests_per_minute), ("tokens per day", tokens_per_day),
                        ("concurrent requests", concurrent_requests)):
        if value is not None and value < 0:
            raise ValidationFailed(f"The limit of {name} cannot be negative: leave it empty for no limit.")
    lookup = {"user": user, "role": ""} if user is not None else {"user": None, "role": role}
    quota = Quota.objects.select_for_update().filter(**lookup).first() or Quota(**lookup)
    old = {f: getattr(quota, f) for f in QUOTA_FIELDS} if quota.pk else None
    quota.requests_per_minute = requests_per_minute
    quota.tokens_per_day = tokens_per_day
    quota.concurrent_requests = concurrent_requests
    quota.allowed_models = sorted({m.strip() for m in (allowed_models or []) if m and m.strip()})
    quota.full_clean()
    quota.save()
    new = {f: getattr(quota, f) for f in QUOTA_FIELDS}
    if new != old:
        audit_record(actor=actor, action="accounts.quota.changed", target=quota, ip=ip,
                     details={"user": user.get_username() if user is not None else None, "role": role or None,
                              "old": old, "new": new})
    return quota


def api_keys_mark_used(*, last_use: dict[int, datetime]) -> None:
    """Record when keys were last used, at most every PORTAL_API_KEY_TOUCH_SECONDS per key (the ledger calls
    this with each batch; a bulk update, so it moves no auth generation)."""
    stale_before = timezone.now() - timedelta(seconds=settings.PORTAL_API_KEY_TOUCH_SECONDS)
    for key_id, at in last_use.items():
        ApiKey.objects.filter(pk=key_id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before)).update(last_used_at=at)

