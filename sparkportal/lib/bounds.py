"""Numbers from requests must fit the database's 64-bit integers.

Python's ints are unbounded; SQLite refuses to bind one past 64 bits (OverflowError, or "datatype
mismatch" in LIMIT/OFFSET) and PostgreSQL answers "out of range" (DataError). Inputs are bounded where
they are parsed (pagination, path converters); `is_out_of_range` recognises what still slips through
(a body field saved as is) so that one handler per interface answers 400 instead of 500.
"""
from django.db import DataError, IntegrityError

DB_INT_MAX = 2**63 - 1
DB_INT_MIN = -(2**63)

OUT_OF_RANGE_MESSAGE = (f"A number in the request is out of range: ids, limit, offset and other integers must be "
                        f"between {DB_INT_MIN} and {DB_INT_MAX}.")


def is_out_of_range(exc: BaseException) -> bool:
    if isinstance(exc, OverflowError | DataError):
        return True
    return isinstance(exc, IntegrityError) and "datatype mismatch" in str(exc)
