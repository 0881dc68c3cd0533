from datetime import datetime

from ninja import Schema
from pydantic import Field

from accounts.schemas import ApiKeyOut

Limit = int | None  # null: no limit


class TeamIn(Schema):
    name: str = Field(max_length=100)
    description: str = Field("", max_length=300)
    requests_per_minute: Limit = Field(None, ge=0, le=2**31 - 1)
    tokens_per_day: Limit = Field(None, ge=0, le=2**53)
    tokens_per_month: Limit = Field(None, ge=0, le=2**53)
    concurrent_requests: Limit = Field(None, ge=0, le=2**31 - 1)
    monthly_token_budget: Limit = Field(None, ge=0, le=2**53)
    allowed_models: list[str] = []
    queue_weight: int = Field(1, ge=1, le=100, description="Multiplies members' shares in the fair queue.")


class MemberOut(Schema):
    user_id: int
    username: str
    is_team_admin: bool
    requests_per_minute: Limit
    tokens_per_day: Limit
    concurrent_requests: Limit
    from_sso: bool

    @staticmethod
    def resolve_username(obj) -> str:
        return obj.user.get_username()


class TeamOut(Schema):
    id: int
    name: str
    description: str
    requests_per_minute: Limit
    tokens_per_day: Limit
    tokens_per_month: Limit
    concurrent_requests: Limit
    monthly_token_budget: Limit
    allowed_models: list[str]
    queue_weight: int
    members: list[MemberOut]
    created_at: datetime

    @staticmethod
    def resolve_members(obj) -> list:
        return list(obj.memberships.all())


class MemberIn(Schema):
    username: str
    is_team_admin: bool = False


class MemberLimitsIn(Schema):
    requests_per_minute: Limit = Field(None, ge=0, le=2**31 - 1)
    tokens_per_day: Limit = Field(None, ge=0, le=2**53)
    concurrent_requests: Limit = Field(None, ge=0, le=2**31 - 1)


class TeamUsageOut(Schema):
    tokens: int | None  # None while the quota counters (Redis) are unreachable
    available: bool
    budget: Limit
    percent: float | None
    warning: bool
    exhausted: bool


class TeamKeyOut(ApiKeyOut):
    pass
