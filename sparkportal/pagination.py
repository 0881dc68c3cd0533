"""The API's limit/offset pagination (NINJA_PAGINATION_CLASS), with bounds the database accepts."""
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

from sparkportal.lib.bounds import DB_INT_MAX

MAX_LIMIT = 1000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    # ninja's own Input has no upper bounds: a limit past 64 bits reached the database and gave a 500.
    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")
        offset: int = Field(0, ge=0, le=DB_INT_MAX, description="Items to skip.")
