from datetime import datetime

from ninja import Schema
from pydantic import Field


class MappingIn(Schema):
    group: str = Field(max_length=200)
    role: str = ""
    team_id: int | None = None
    team_admin: bool = False


class MappingOut(Schema):
    id: int
    group: str
    role: str
    team_id: int | None
    team: str | None
    team_admin: bool
    created_at: datetime

    @staticmethod
    def resolve_team(obj) -> str | None:
        return obj.team.name if obj.team_id else None
