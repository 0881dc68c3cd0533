"""SCIM 2.0 endpoints (/scim/v2/): the subset identity providers use (Entra ID, Okta, Authentik, Keycloak).

Users: list with `userName eq`/`externalId eq` filters, get, create, replace, patch (active and other
attributes), delete. Groups: list with `displayName eq`, get, create, replace, patch members, delete.
Bearer token PORTAL_SCIM_TOKEN; errors in SCIM's own shape (RFC 7644 section 3.12).
"""
from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import User
from accounts.scim import resources, services
from accounts.scim.models import ScimGroup
from accounts.scim.resources import ScimError
from sparkportal.exceptions import ApplicationError

MAX_PAGE = 200
MAX_BODY = 1_000_000


def _json(body: dict | None, status: int = 200) -> HttpResponse:
    if body is None:
        return HttpResponse(status=status)
    return HttpResponse(json.dumps(body), status=status, content_type="application/scim+json")


def scim_endpoint(view: Callable) -> Callable:
    """Bearer check, JSON body parsing, and every refusal in SCIM's error shape (never a 500 for bad input)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            _authenticate(request)
            body = _body(request)
            return view(request, body, *args, **kwargs)
        except ScimError as exc:
            return _json(exc.body(), exc.status)
        except ApplicationError as exc:
            scim_type = {409: "uniqueness", 400: "invalidValue"}.get(exc.status)
            return _json(ScimError(exc.status, exc.message, scim_type).body(), exc.status)

    return wrapper


def _authenticate(request: HttpRequest) -> None:
    token = settings.PORTAL_SCIM_TOKEN
    if not token:
        raise ScimError(404, "SCIM provisioning is off on this portal: an admin sets PORTAL_SCIM_TOKEN to turn it on.")
    given = request.headers.get("Authorization", "")
    if not given.lower().startswith("bearer ") or not hmac.compare_digest(given[7:].strip().encode(),
                                                                         token.encode()):
        raise ScimError(401, "Send the SCIM bearer token the portal's admin configured (PORTAL_SCIM_TOKEN).")


def _body(request: HttpRequest) -> dict:
    if request.method not in ("POST", "PUT", "PATCH"):
        return {}
    if len(request.body) > MAX_BODY:
        raise ScimError(413, f"The request body is larger than {MAX_BODY} bytes.", "tooMany")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ScimError(400, f"The body is not valid JSON ({exc}).", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    return body


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/scim/v2").rstrip("/")


def _page(request: HttpRequest) -> tuple[int, int]:
    try:
        start = max(1, int(request.GET.get("startIndex", 1)))
        count = max(0, min(MAX_PAGE, int(request.GET.get("count", 100))))
    except ValueError:
        raise ScimError(400, "startIndex and count must be whole numbers.", "invalidValue") from None
    return start, count


def _user(user_id: str) -> User:
    user = User.objects.filter(pk=int(user_id) if user_id.isdigit() else 0, scim__deleted_at__isnull=True,
                               scim__isnull=False).select_related("scim").first()
    if user is None:
        raise ScimError(404, f"No user {user_id} provisioned over SCIM.")
    return user


def _group(group_id: str) -> ScimGroup:
    group = ScimGroup.objects.filter(pk=int(group_id) if group_id.isdigit() else 0).first()
    if group is None:
        raise ScimError(404, f"No group {group_id}.")
    return group


def _str(body: dict, field: str, *, limit: int = 255) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ScimError(400, f"{field} must be a string of at most {limit} characters.", "invalidValue")
    return value


@scim_endpoint
def users(request: HttpRequest, body: dict) -> HttpResponse:
    if request.method == "POST":
        user = services.scim_user_create(
            user_name=_str(body, "userName", limit=150) or "", external_id=_str(body, "externalId") or "",
            email=resources.primary_email(body) or "", active=resources.as_bool(body.get("active", True), "active"))
        return _json(resources.user_resource(user, _base(request)), 201)
    if request.method != "GET":
        raise ScimError(405, "Use GET or POST on /Users.")
    qs = User.objects.filter(scim__isnull=False, scim__deleted_at__isnull=True).select_related("scim").order_by("pk")
    return _listing(request, qs, {"userName": "username__iexact", "externalId": "scim__external_id"},
                    resources.user_resource)


@scim_endpoint
def user_detail(request: HttpRequest, body: dict, user_id: str) -> HttpResponse:
    user = _user(user_id)
    if request.method == "GET":
        return _json(resources.user_resource(user, _base(request)))
    if request.method == "DELETE":
        services.scim_user_delete(user=user)
        return _json(None, 204)
    if request.method == "PUT":
        user = services.scim_user_update(
            user=user, user_name=_str(body, "userName", limit=150), external_id=_str(body, "externalId"),
            email=resources.primary_email(body), active=resources.as_bool(body.get("active", True), "active"))
    elif request.method == "PATCH":
        user = services.scim_user_update(user=user, **_user_patch(body))
    else:
        raise ScimError(405, "Use GET, PUT, PATCH or DELETE on /Users/{id}.")
    return _json(resources.user_resource(User.objects.get(pk=user.pk), _base(request)))


USER_PATCHABLE = {"active": "active", "username": "user_name", "externalid": "external_id"}


def _operations(body: dict) -> list[dict]:
    ops = body.get("Operations")
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise ScimError(400, "A PATCH body holds an \"Operations\" list (RFC 7644 section 3.5.2).", "invalidSyntax")
    return ops


def _user_patch(body: dict) -> dict:
    """`replace`/`add` of active, userName, externalId, by path or as a value object (Entra ID's way)."""
    changes: dict = {}
    for op in _operations(body):
        if str(op.get("op", "")).lower() not in ("replace", "add"):
            raise ScimError(400, f"Operation {op.get('op')!r} on a user is not supported: use replace.", "invalidValue")
        values = {op["path"]: op.get("value")} if op.get("path") else op.get("value")
        if not isinstance(values, dict):
            raise ScimError(400, "A replace without a path needs an object value.", "invalidValue")
        for path, value in values.items():
            key = USER_PATCHABLE.get(str(path).lower())
            if key is None:
                continue  # attributes the portal does not keep (name, title, ...) are ignored, as RFC 7644 allows
            if key == "active":
                value = resources.as_bool(value, "active")
            elif not isinstance(value, str):
                raise ScimError(400, f"{path} must be a string.", "invalidValue")
            changes[key] = value
    return changes


def _members(values, what: str) -> list[User]:
    if not isinstance(values, list):
        raise ScimError(400, f"{what} must be a list of {{\"value\": \"<user id>\"}}.", "invalidValue")
    ids = [str(v.get("value", "")) if isinstance(v, dict) else "" for v in values]
    found = {str(u.pk): u for u in User.objects.filter(pk__in=[int(i) for i in ids if i.isdigit()],
                                                       scim__isnull=False)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ScimError(400, f"No provisioned user with id {', '.join(missing)}.", "invalidValue")
    return list(found.values())


@scim_endpoint
def groups(request: HttpRequest, body: dict) -> HttpResponse:
    if request.method == "POST":
        group = services.scim_group_save(display_name=_str(body, "displayName", limit=200) or "",
                                         external_id=_str(body, "externalId") or "",
                                         members=_members(body.get("members", []), "members"))
        return _json(resources.group_resource(group, _base(request)), 201)
    if request.method != "GET":
        raise ScimError(405, "Use GET or POST on /Groups.")
    qs = ScimGroup.objects.prefetch_related("members").order_by("pk")
    return _listing(request, qs, {"displayName": "display_name", "externalId": "external_id"},
                    resources.group_resource)


@scim_endpoint
def group_detail(request: HttpRequest, body: dict, group_id: str) -> HttpResponse:
    group = _group(group_id)
    if request.method == "GET":
        return _json(resources.group_resource(group, _base(request)))
    if request.method == "DELETE":
        services.scim_group_delete(group=group)
        return _json(None, 204)
    if request.method == "PUT":
        group = services.scim_group_save(group=group, display_name=_str(body, "displayName", limit=200),
                                         external_id=_str(body, "externalId"),
                                         members=_members(body.get("members", []), "members"))
    elif request.method == "PATCH":
        group = services.scim_group_save(group=group, **_group_patch(body))
    else:
        raise ScimError(405, "Use GET, PUT, PATCH or DELETE on /Groups/{id}.")
    return _json(resources.group_resource(group, _base(request)))


MEMBER_PATH = re.compile(r'^members\[value eq "([^"]+)"\]$', re.IGNORECASE)


def _group_patch(body: dict) -> dict:
    """add/remove/replace of members (by list, or `members[value eq "id"]`), replace of displayName."""
    changes: dict = {"add": [], "remove": []}
    for op in _operations(body):
        kind, path, value = str(op.get("op", "")).lower(), str(op.get("path") or ""), op.get("value")
        one = MEMBER_PATH.match(path)
        if kind == "remove" and one:
            changes["remove"] += _members([{"value": one.group(1)}], "path")
        elif path.lower() == "members" and kind in ("add", "remove", "replace"):
            users = _members(value if value is not None else [], "members")
            key = {"add": "add", "remove": "remove", "replace": "members"}[kind]
            changes[key] = changes.get(key, []) + users if key != "members" else users
        elif kind == "replace" and (path.lower() == "displayname" or (not path and isinstance(value, dict))):
            name = value if path else value.get("displayName")
            if not isinstance(name, str):
                raise ScimError(400, "displayName must be a string.", "invalidValue")
            changes["display_name"] = name
        else:
            raise ScimError(400, f"Operation {kind!r} on {path or 'the group'!r} is not supported.", "invalidPath")
    return changes


@scim_endpoint
def service_provider_config(request: HttpRequest, body: dict) -> HttpResponse:
    return _json({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_PAGE}, "changePassword": {"supported": False},
        "sort": {"supported": False}, "etag": {"supported": False},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer token",
                                   "description": "PORTAL_SCIM_TOKEN, set by the portal's admin"}],
    })


def _listing(request: HttpRequest, qs, filters: dict[str, str], render) -> HttpResponse:
    """One page of a filtered resource list, as RFC 7644 3.4.2 shapes it."""
    found = resources.parse_filter(request.GET.get("filter", ""), filters)
    if found:
        qs = qs.filter(**{found[0]: found[1]})
    start, count = _page(request)
    page = [render(row, _base(request)) for row in qs[start - 1:start - 1 + count]]
    return _json(resources.list_response(page, total=qs.count(), start=start))
