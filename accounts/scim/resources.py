"""SCIM 2.0 resources and messages (RFC 7643 core schema, RFC 7644 protocol), as plain dicts."""
from __future__ import annotations

import re

from accounts.models import User
from accounts.scim.models import ScimGroup

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
# The filters identity providers send to find one resource: `userName eq "ann"` (RFC 7644 section 3.4.2.2).
FILTER = re.compile(r'^\s*(\w+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    def body(self) -> dict:
        body = {"schemas": [ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def parse_filter(text: str, allowed: dict[str, str]) -> tuple[str, str] | None:
    """(model field, value) of an `attribute eq "value"` filter; None for no filter."""
    if not text:
        return None
    match = FILTER.match(text)
    fields = {name.lower(): field for name, field in allowed.items()}
    if match is None or match.group(1).lower() not in fields:
        understood = " or ".join(f'{a} eq "…"' for a in allowed)
        raise ScimError(400, f"Unsupported filter {text!r}: this portal understands {understood}.", "invalidFilter")
    return fields[match.group(1).lower()], match.group(2).replace('\\"', '"')


def user_resource(user: User, base: str) -> dict:
    link = getattr(user, "scim", None)
    return {
        "schemas": [USER], "id": str(user.pk), "externalId": link.external_id if link else "",
        "userName": user.username, "active": user.is_active,
        "emails": [{"value": user.email, "primary": True}] if user.email else [],
        "groups": [{"value": str(g.pk), "display": g.display_name} for g in user.scim_groups.all()],
        "meta": {"resourceType": "User", "location": f"{base}/Users/{user.pk}"},
    }


def group_resource(group: ScimGroup, base: str) -> dict:
    return {
        "schemas": [GROUP], "id": str(group.pk), "externalId": group.external_id, "displayName": group.display_name,
        "members": [{"value": str(u.pk), "display": u.username} for u in group.members.all()],
        "meta": {"resourceType": "Group", "location": f"{base}/Groups/{group.pk}"},
    }


def list_response(resources: list[dict], *, total: int, start: int) -> dict:
    return {"schemas": [LIST], "totalResults": total, "startIndex": start, "itemsPerPage": len(resources),
            "Resources": resources}


def primary_email(body: dict) -> str | None:
    emails = body.get("emails")
    if not isinstance(emails, list):
        return None
    values = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = next((e for e in values if e.get("primary")), values[0] if values else None)
    return primary["value"][:254] if primary else ""


def as_bool(value, what: str) -> bool:
    """Entra ID sends "False" as a string in PATCH operations."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimError(400, f"{what} must be true or false, not {value!r}.", "invalidValue")
