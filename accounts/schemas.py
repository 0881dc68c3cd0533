from datetime import datetime

from ninja import Field, Schema


class ErrorOut(Schema):
    detail: str
    code: str


class MeOut(Schema):
    id: int
    username: str
    role: str
    is_portal_admin: bool


class ApiKeyIn(Schema):
    name: str
    scopes: list[str] = []
    expires_at: datetime | None = None
    team_id: int | None = Field(None, description="One of your teams: the key's requests are charged to it. "
                                                  "Empty: your only team if you have exactly one, else none.")


class ApiKeyPatch(Schema):
    """Fields left out keep their value; `expires_at: null` removes the expiry."""

    scopes: list[str] | None = None
    expires_at: datetime | None = None


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str
    owner: str
    scopes: list[str]
    expires_at: datetime | None
    gateway_only: bool
    team_id: int | None
    team: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    @staticmethod
    def resolve_owner(obj) -> str:
        return obj.owner.get_username()

    @staticmethod
    def resolve_team(obj) -> str | None:
        return obj.team.name if obj.team_id else None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str


class AuditEventOut(Schema):
    id: int
    actor_name: str
    action: str
    target_type: str
    target_id: str
    details: dict
    ip: str | None
    created_at: datetime
